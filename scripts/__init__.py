"""Small developer helpers behind the Makefile (importable by tests and bench as ``scripts.*``)."""
