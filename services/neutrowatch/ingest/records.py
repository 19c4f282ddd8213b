"""Parsed events -> the records ingest publishes: each stamped with its ingest time, and the whole
message refused when one of them is dated implausibly: in the future, before 1900 or before the
patient was born (neutrowatch.domain.timing)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable

from neutrowatch.domain.events import Event, with_ingested_at
from neutrowatch.domain.timing import implausible_time
from neutrowatch.parsing.errors import InputRejected
from neutrowatch.platform.kafka import OutRecord


def records_of(events: Iterable[Event], now: datetime, future_tolerance: timedelta,
               fields: dict[str, str]) -> list[OutRecord]:
    """``fields``: the sender's name of each canonical time field, for the rejection."""
    events = list(events)
    for event in events:
        ahead = implausible_time(event, now, future_tolerance)
        if ahead is not None:
            raise InputRejected(ahead.code, ahead.reason, fields.get(ahead.field or "", ahead.field))
    return [OutRecord.of(with_ingested_at(e.to_record(), now), e.patient_key) for e in events]
