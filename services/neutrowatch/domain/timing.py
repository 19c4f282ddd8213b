"""Is an event's time plausible? One dated in the future is refused, at ingest and by the monitor.

A result collected "in 2062" (a mistyped year, a sender clock or time zone hours ahead) would be
the patient's newest count, and the engine keeps a bounded history measured back from the newest
row: every real count would fall behind that bound and be ignored, so the patient's next 300 would
page no one. Refused with a reason the sender can act on, it is fixed at the source instead.
Deletions are never refused: they must be able to withdraw a result that got in before.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from neutrowatch.domain.events import RETRACTING_STATUSES, Event, LabResult, Rejection

FUTURE_TIME = "future_time"
DEFAULT_TOLERANCE = timedelta(hours=1)  # a sender's clock a little fast; not a wrong zone or date


def dated_ahead(event: Event, now: datetime, tolerance: timedelta) -> Rejection | None:
    """A rejection when ``event`` says it happened more than ``tolerance`` after ``now``."""
    if isinstance(event, LabResult):
        if event.status in RETRACTING_STATUSES:
            return None
        at, name, what = event.collected_at, "collected_at", "specimen collection time"
    else:
        if event.status == "entered-in-error":
            return None
        at, name, what = event.started_at, "started_at", "administration start time"
    ahead = at - now
    if ahead <= tolerance:
        return None
    return Rejection(FUTURE_TIME, f"the {what} {at.isoformat()} is {_span(ahead)} after it was received "
                     f"(at most {_span(tolerance)} is allowed): check the date, and the sender's clock "
                     f"and time zone", name)


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
