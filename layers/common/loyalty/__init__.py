"""The loyalty domain package: rules, ledger store and the API conventions every function shares."""
