"""Data access: the only code that talks to DynamoDB. It returns domain models, never raw items."""
