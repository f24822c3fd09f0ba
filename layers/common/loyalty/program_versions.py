"""Versions of a program and which one is in force when. Pure: values in, values out, no clock.

A program is never edited in place: each change is a new version (1, 2, 3...) with the instant it
takes effect (``effective_from``, RFC 3339 UTC with microseconds, see ``instant``: the strings
compare as the instants do, and two changes a moment apart keep their order; ``None`` for a
version in force since the program began, e.g. one the operator CLI wrote). The version in force
at an instant is the NEWEST version (highest number) whose ``effective_from`` has come: a later
change wins over an older one scheduled after it, which then never takes effect (``superseded``).
Every version stays stored, so history is never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import Field

from loyalty.models import Frozen, Program


def instant(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-12-01T00:00:00.000000Z``: sorts as time does."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class VersionStatus(StrEnum):
    CURRENT = "current"  # in force now
    SCHEDULED = "scheduled"  # takes effect later
    PAST = "past"  # was in force, a newer version took over
    SUPERSEDED = "superseded"  # never in force: a newer version took effect first


class ProgramVersion(Frozen):
    version: int = Field(ge=1)
    effective_from: str | None = Field(description="``instant`` format; None: since the program began.")
    created_at: str | None = None
    created_by: dict[str, str] | None = Field(default=None, description="key_id and role of who stored it.")
    program: Program

    @property
    def starts(self) -> str:
        """``effective_from`` for comparisons: the empty string sorts before every instant."""
        return self.effective_from or ""


def in_force(versions: Iterable[ProgramVersion], at: str) -> ProgramVersion | None:
    """The version in force at ``at`` (an ``instant``): the newest that has started."""
    return max((v for v in versions if v.starts <= at), key=lambda v: v.version, default=None)


def status(version: ProgramVersion, versions: Sequence[ProgramVersion], at: str) -> VersionStatus:
    """Where ``version`` stands at ``at`` among all the program's ``versions``."""
    newer = [v.starts for v in versions if v.version > version.version]
    ends = min(newer, default=None)  # when a newer version takes over (None: never)
    if ends is not None and ends <= version.starts:
        return VersionStatus.SUPERSEDED
    if version.starts > at:
        return VersionStatus.SCHEDULED
    if ends is not None and ends <= at:
        return VersionStatus.PAST
    return VersionStatus.CURRENT


def live(versions: Sequence[ProgramVersion], at: str) -> list[ProgramVersion]:
    """The versions that are or will be in force from ``at`` on, by version: the current one and the
    scheduled ones. For every instant from ``at`` on, ``in_force`` of these equals ``in_force`` of
    all versions, so the program's head item keeps only these (a few), read in one GetItem."""
    keep = {VersionStatus.CURRENT, VersionStatus.SCHEDULED}
    return sorted((v for v in versions if status(v, versions, at) in keep), key=lambda v: v.version)


def latest(versions: Iterable[ProgramVersion]) -> ProgramVersion | None:
    """The newest version: what the program will be once every scheduled change has taken effect."""
    return max(versions, key=lambda v: v.version, default=None)
