"""What the scheduled jobs (birthdays, touches) share."""

from __future__ import annotations

from typing import Any


class JobUnfinished(RuntimeError):
    """Raised at the end of a run that left members (a failure, or time ran short): the
    asynchronous invocation fails, so Lambda retries it; what was done is not redone. ``summary``
    has ``failed`` (a list), ``left`` (time ran short) and ``as_dict()``."""

    what = "work"  # what was left, in the message

    def __init__(self, summary: Any) -> None:
        super().__init__(
            f"{self.what} left for a retry: {len(summary.failed)} failed"
            + (", and time ran short" if summary.left else "")
            + f" ({summary.as_dict()})"
        )
        self.summary = summary
