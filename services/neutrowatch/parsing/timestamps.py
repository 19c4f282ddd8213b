"""Timestamps of HL7 v2 (DTM/TS) and FHIR (dateTime/instant), always returned timezone-aware.

An HL7 time without an offset is in the sender's zone: the caller passes it (MSH-7's offset,
else the configured zone, e.g. a ZoneInfo with its daylight-saving rules) as ``default_tz``;
UTC when the caller passes none. Returns None for text that is not a timestamp; the caller decides
which field to blame.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo

_HL7_DTM = re.compile(
    r"^(\d{4})(\d{2})(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?$"
)
_FHIR_DT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|([+-])(\d{2}):(\d{2}))?)?$"
)


def _build(year, month, day, hour, minute, second, fraction, sign, off_h, off_m,
           default_tz: tzinfo = timezone.utc) -> datetime | None:
    try:
        tz = default_tz
        if sign:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            if offset >= timedelta(hours=24):
                return None
            tz = timezone(offset if sign == "+" else -offset)
        micro = int((fraction or "0").ljust(6, "0")[:6])
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                        int(second or 0), micro, tzinfo=tz)
    except (ValueError, OverflowError):
        return None


def parse_hl7_timestamp(text: str | None, default_tz: tzinfo = timezone.utc) -> datetime | None:
    """YYYYMMDD[HH[MM[SS[.S+]]]][+/-ZZZZ] -> aware datetime (``default_tz`` when the text has
    no offset), else None."""
    if not text:
        return None
    match = _HL7_DTM.match(text.strip())
    if not match:
        return None
    return _build(*match.groups(), default_tz=default_tz)


def hl7_offset(text: str | None) -> tzinfo | None:
    """The explicit UTC offset of an HL7 timestamp (e.g. MSH-7), or None when it states none."""
    if not text:
        return None
    match = _HL7_DTM.match(text.strip())
    if not match or not match.group(8):
        return None
    value = _build(*match.groups())
    return value.tzinfo if value is not None else None


def parse_fhir_datetime(text: object) -> datetime | None:
    """YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.f]][Z|+hh:mm] -> aware datetime, else None."""
    if not isinstance(text, str):
        return None
    match = _FHIR_DT.match(text.strip())
    if not match:
        return None
    y, mo, d, h, mi, s, frac, zone, sign, oh, om = match.groups()
    return _build(y, mo, d, h, mi, s, frac, sign, oh, om)


def hl7_date(text: str | None) -> str | None:
    """An HL7 date/time as YYYY, YYYY-MM or YYYY-MM-DD (birth dates), else None."""
    if not text:
        return None
    match = re.match(r"^(\d{4})(\d{2})?(\d{2})?", text.strip())
    if not match:
        return None
    year, month, day = match.groups()
    if day and month:
        try:
            datetime(int(year), int(month), int(day))
        except ValueError:
            return None
        return f"{year}-{month}-{day}"
    if month:
        return f"{year}-{month}" if 1 <= int(month) <= 12 else None
    return year


__all__ = ["hl7_date", "hl7_offset", "parse_fhir_datetime", "parse_hl7_timestamp"]
