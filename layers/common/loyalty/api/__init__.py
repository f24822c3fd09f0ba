"""The HTTP API: edge models and routers. Functions compose these; rules live elsewhere."""
