"""The embedded local stack: the SAM template emulated on loopback, no Docker, no AWS account.

Start it with ``python -m local.stack`` (see docs/LOCAL_STACK.md). This package is development
tooling; nothing under ``functions/`` or ``layers/`` imports it.

Keep this module free of imports: worker processes (started with ``spawn``) import the package
before they import a function's handler, and every import here would slow each cold start.
"""
