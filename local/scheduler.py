"""Schedules (``Type: ScheduleV2`` and ``Type: Schedule``) fired by the local clock.

In real time a background thread checks about every second and invokes due schedules
asynchronously, as EventBridge does. Time travel (:meth:`Scheduler.travel_to`) moves the clock
step by step instead: every occurrence that falls due is fired in chronological order across all
schedules (ties by name), each invocation sees ``now`` = its occurrence, and after each one the
stack waits until queues and streams are drained, so the outcome does not depend on timing.

Both paths advance each schedule's next occurrence under one lock, so an occurrence fires exactly
once whichever path reaches it first.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local.clock import ClockError, LocalClock, format_rfc3339, parse_rfc3339
from local.cron import RateSchedule, Schedule, ScheduleExpressionError, Window, parse_expression
from local.model import ScheduleSpec
from local.template import ACCOUNT_ID, REGION, TemplateError
from local.workers import FunctionRuntime

log = logging.getLogger(__name__)

DEFAULT_MAX_FIRES = 10_000


class TooManyOccurrencesError(ValueError):
    """A time travel would fire more occurrences than allowed."""


@dataclass
class _Active:
    spec: ScheduleSpec
    schedule: Schedule
    next_due: datetime | None


def scheduled_event(spec: ScheduleSpec, at: datetime) -> Any:
    """The event a schedule sends: its ``Input`` (Scheduler's context attributes filled in), or
    EventBridge's "Scheduled Event"."""
    if spec.input is not None:
        text = spec.input
        if spec.kind == "ScheduleV2":
            for name, value in (
                ("scheduled-time", format_rfc3339(at)),
                ("execution-id", str(uuid.uuid4())),
                ("schedule-arn", spec.resource_arn),
                ("attempt-number", "1"),
            ):
                text = text.replace(f"<aws.scheduler.{name}>", value)
        try:
            return json.loads(text)
        except ValueError:
            return text
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": format_rfc3339(at),
        "region": REGION,
        "resources": [spec.resource_arn],
        "detail": {},
    }


class Scheduler:
    def __init__(
        self,
        specs: list[ScheduleSpec],
        runtime: FunctionRuntime,
        clock: LocalClock,
        drain: Callable[[], bool],
    ) -> None:
        self.specs = specs
        self._runtime = runtime
        self._clock = clock
        self._drain = drain
        self._lock = threading.Lock()  # next_due of every schedule; one time travel at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="schedule")
        self._in_flight = 0
        self._completed = 0
        self._counter_lock = threading.Lock()
        started = clock.now()
        self._active = [self._activate(spec, started) for spec in specs if spec.enabled]

    def _activate(self, spec: ScheduleSpec, started: datetime) -> _Active:
        try:
            start = parse_rfc3339(spec.start) if spec.start else None
            end = parse_rfc3339(spec.end) if spec.end else None
            # A rate counts from StartDate when there is one, else from now.
            schedule: Schedule = parse_expression(spec.expression, zone_name=spec.timezone, anchor=start or started)
        except (ScheduleExpressionError, ValueError) as exc:
            raise TemplateError(f"{spec.name}: {exc}") from exc
        first = schedule.next_after(started)
        if isinstance(schedule, RateSchedule) and spec.kind == "ScheduleV2" and (start is None or start >= started):
            # Scheduler runs a rate schedule at once (or at its StartDate); a rule waits one period.
            first = schedule.anchor
        if start or end:
            schedule = Window(schedule, start, end)
            if first is not None and end is not None and first > end:
                first = None
        return _Active(spec, schedule, first)

    # -- drain support (an async scheduled invocation is work in progress)

    def wake(self) -> None:
        pass

    def idle(self, since: float) -> bool:
        with self._counter_lock:
            return self._in_flight == 0

    def work_done(self) -> int:
        with self._counter_lock:
            return self._completed

    # -- real time

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                with self._lock:
                    due = self._take_due(self._clock.now(), limit=None)
                for at, active in due:
                    self._fire_async(active, at)
            except Exception:
                log.exception("scheduler tick failed")

    def _fire_async(self, active: _Active, at: datetime) -> None:
        with self._counter_lock:
            self._in_flight += 1

        def fire() -> None:
            try:
                self._runtime.invoke(
                    active.spec.function, scheduled_event(active.spec, at), self._clock.now(), source=active.spec.name
                )
            finally:
                with self._counter_lock:
                    self._in_flight -= 1
                    self._completed += 1

        self._pool.submit(fire)

    # -- both

    def _take_due(self, until: datetime, limit: int | None) -> list[tuple[datetime, _Active]]:
        """The occurrences due up to ``until``, in order; each schedule's next_due moves past it.
        With a ``limit``, raises before changing anything when there are more than that."""
        due: list[tuple[datetime, str, _Active]] = []
        for active in self._active:
            moment = active.next_due
            while moment is not None and moment <= until:
                due.append((moment, active.spec.name, active))
                if limit is not None and len(due) > limit:
                    raise TooManyOccurrencesError(
                        f"this time travel would fire more than {limit} scheduled invocations; "
                        "travel in smaller steps or raise max_fires"
                    )
                moment = active.schedule.next_after(moment)
        for active in self._active:
            moment = active.next_due
            while moment is not None and moment <= until:
                moment = active.schedule.next_after(moment)
            active.next_due = moment
        due.sort(key=lambda item: (item[0], item[1]))
        return [(moment, active) for moment, _, active in due]

    def travel_to(self, target: datetime, max_fires: int = DEFAULT_MAX_FIRES, *, fire: bool = True) -> dict[str, Any]:
        """Move the clock to ``target`` (forward only), firing what falls due on the way. With
        ``fire=False`` nothing fires: the occurrences on the way are dropped (``skipped``), as if
        the schedules had been down meanwhile, and each schedule's next one is after ``target``."""
        with self._lock:
            now = self._clock.now()
            if target < now:
                raise ClockError(
                    f"the clock only moves forward: {format_rfc3339(target)} is before {format_rfc3339(now)}"
                )
            if not fire:
                skipped = []
                for active in self._active:
                    if active.next_due is not None and active.next_due <= target:
                        skipped.append({"schedule": active.spec.name, "from": format_rfc3339(active.next_due)})
                        active.next_due = active.schedule.next_after(target)
                if target > self._clock.now():
                    self._clock.move_to(target)
                return {"fired": [], "skipped": sorted(skipped, key=lambda s: s["schedule"]), "drained": True}
            due = self._take_due(target, limit=max_fires)
            fired = []
            drained = True
            for at, active in due:
                if at > self._clock.now():
                    self._clock.move_to(at)
                result = self._runtime.invoke(
                    active.spec.function,
                    scheduled_event(active.spec, at),
                    at,
                    source=f"{active.spec.name} @ {format_rfc3339(at)}",
                )
                entry: dict[str, Any] = {"schedule": active.spec.name, "at": format_rfc3339(at), "ok": result.ok}
                if not result.ok:
                    entry["error"] = result.error
                fired.append(entry)
                drained = self._drain() and drained
            if target > self._clock.now():
                self._clock.move_to(target)
            return {"fired": fired, "drained": drained}

    def describe(self) -> list[dict[str, Any]]:
        # No lock: this must answer while a time travel is running (it may be a step behind).
        due = {item.spec.name: item.next_due for item in self._active}
        return [
            {
                "schedule": spec.name,
                "expression": spec.expression,
                "timezone": spec.timezone or "UTC",
                "enabled": spec.enabled,
                "next": format_rfc3339(moment) if (moment := due.get(spec.name)) else None,
            }
            for spec in self.specs
        ]
