"""Messages to customers: kinds, consents, templates, SMS rules and unsubscribe links (this side),
and the decision to send and the sending itself (``sending`` and the sender functions)."""
