"""Is an event's time plausible? One dated in the future, before 1900 or before the patient was
born is refused, at ingest, by ``analyze`` and by the monitor.

A result collected "in 2062" (a mistyped year, a sender clock or time zone hours ahead) would be
the patient's newest row, and the engine keeps a bounded history measured back from the newest
row: every real count would fall behind that bound and be ignored, so the patient's next 300 would
page no one. A deletion dated so would do the same, and for good (nothing outranks a deletion); a
report time in the future would outrank every later version of the result; a birth date in the
future would grade an adult by a newborn's limits. Refused with a reason the sender can act on,
the date is fixed at the source instead. A deletion of a result that was taken in is never refused:
that result was at most the tolerance ahead when it came, and is less so now.

A time before 1900, or before the birth date the same message gives (OBR-7 ``18000101``, FHIR
``0001-01-01``: a placeholder or a typing error), is refused as ``implausible_time``: kept, it
would be the patient's oldest row and date their episodes from then.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from neutrowatch.domain.events import Event, LabResult, Rejection

FUTURE_TIME = "future_time"
IMPLAUSIBLE_TIME = "implausible_time"
EARLIEST_YEAR = 1900
DEFAULT_TOLERANCE = timedelta(hours=1)  # a sender's clock a little fast; not a wrong zone or date


def implausible_time(event: Event, now: datetime, tolerance: timedelta) -> Rejection | None:
    """A rejection when ``event`` says something happened more than ``tolerance`` after ``now``,
    before 1900, or before the patient's birth date."""
    if isinstance(event, LabResult):
        times = [(event.collected_at, "collected_at", "specimen collection time"),
                 (event.reported_at, "reported_at", "report time")]
    else:
        times = [(event.started_at, "started_at", "administration start time")]
    birth = getattr(event, "birth_date", None)
    if birth is not None and birth > (now + tolerance).date().isoformat():
        return Rejection(FUTURE_TIME, f"the birth date {birth} is after the day it was received", "birth_date")
    for at, name, what in times:
        if at is not None and at - now > tolerance:
            return Rejection(FUTURE_TIME, f"the {what} {at.isoformat()} is {_span(at - now)} after it was "
                             f"received (at most {_span(tolerance)} is allowed): check the date, and the "
                             f"sender's clock and time zone", name)
        if at is not None and at.year < EARLIEST_YEAR:
            return Rejection(IMPLAUSIBLE_TIME, f"the {what} {at.isoformat()} is before {EARLIEST_YEAR}: "
                             "check the date", name)
        if at is not None and birth and at.date().isoformat() < birth:
            return Rejection(IMPLAUSIBLE_TIME, f"the {what} {at.date().isoformat()} is before the patient's "
                             f"birth date {birth}: check the date", name)
    return None


def _span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"
