"""The one place the engine reads the wall clock.

Code that needs the time calls ``clock.now()`` through the module (``from loyalty import clock``),
never ``datetime.now()`` directly. Pure rules never read the clock at all: they take the time as
an argument. The local stack's time travel replaces ``now`` in its worker processes; nothing in
production looks for a switch.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and whole seconds, the API's time format."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
