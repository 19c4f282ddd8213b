"""Merging one event into the normalised history, and keeping the history bounded.

Versions of one result (same observation_id) are ordered by status rank (P < F < C < X/D), then
reported_at (OBR-22 / FHIR ``issued``; a version that has it beats one that has not), then
ingested_at (when ingest received the version and put it on Kafka; a version that has it beats
one that has not), then the more alarming value; the greatest version is kept.
So when status and reported_at cannot tell two versions apart, the one received later replaces
the earlier one (a lab sends a second correction because the first was wrong; clinical-reference.md,
"Result status"). A preliminary never replaces a final; X/D always win and leave a tombstone.

The order depends only on the versions themselves, not on when the engine sees them: the history
is a function of the set of records received, ingest stamps included, and a redelivered record
(same event, same stamp) changes nothing. When neither version carries an ingest stamp (records
from before ingest kept them, or a producer that does not stamp, such as offline analysis of
files) nothing says which came later, and the tie goes the safe way, to the more alarming value
(the lower count, the higher temperature).

``Obs.rep`` is the reported-at time (epoch seconds) and ``Obs.ing`` the ingest stamp (epoch
microseconds), each 0 when unknown.

A value reported as a bound is kept one float step past it (``lab_obs``): "<100" as the float just
below 100, so every rule reads it as strictly below 100 (agranulocytosis is ANC < 100) and the
state keeps its shape (a float, which round-trips through JSON exactly); ">X" just above X.
"<=X" / ">=X" are X itself. The texts show such a value as "<100" (alerts.py).

Administrations are ordered likewise by status
(in-progress < completed/stopped < not-done/entered-in-error)."""
from __future__ import annotations

import math
from bisect import insort
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.findings import Adm, Obs
from neutrowatch.domain.events import STATUS_RANK, Event, LabResult, MedicationAdministration

DAY = 86400
_ADM_CODE = {"in-progress": "i", "completed": "c", "stopped": "s", "not-done": "x",
             "entered-in-error": "x"}
_ADM_RANK = {"i": 0, "c": 1, "s": 1, "x": 2}


@dataclass(frozen=True)
class Change:
    """What merging an event changed: the earliest collection time affected and why."""

    series: str  # "anc", "temp", "adm"
    t: int
    cause: str  # "new_result", "corrected_result", "deleted_result", "administration"


def epoch(dt) -> int:
    if dt.tzinfo is None:
        raise ValueError("collection/administration times must be timezone-aware")
    return int(dt.timestamp())


def lab_obs(ev: LabResult) -> Obs:
    value = None if ev.status in ("X", "D") or ev.value is None else float(ev.value)
    if value is not None and ev.comparator in _NUDGE:
        value = math.nextafter(value, _NUDGE[ev.comparator])
    return Obs(epoch(ev.collected_at), value, ev.observation_id, ev.status,
               epoch(ev.reported_at) if ev.reported_at else 0, ingested_micros(ev.ingested_at))


# "<X": strictly below X, the float just below it; ">X" just above. "<=X" / ">=X" may be X.
_NUDGE = {"<": -math.inf, ">": math.inf}


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
# a plausible ingest time in epoch microseconds: after 1970-01-12, before the year 2286
INGEST_US_MIN, INGEST_US_MAX = 10 ** 12, 10 ** 16


def ingested_micros(ingested: datetime | None) -> int:
    """The ingest stamp in epoch microseconds; 0 when there is none or it is not plausible."""
    if ingested is None:
        return 0
    if ingested.tzinfo is None:  # the schema asks for an offset; read a bare time as UTC
        ingested = ingested.replace(tzinfo=timezone.utc)
    micros = (ingested - _EPOCH) // _US
    return micros if INGEST_US_MIN <= micros < INGEST_US_MAX else 0


def adm_row(ev: MedicationAdministration) -> Adm:
    dose = ev.dose
    mgkg, mg = (dose.mg_per_kg, dose.mg) if dose is not None else (None, None)
    return Adm(epoch(ev.started_at), epoch(ev.ended_at) if ev.ended_at else None,
               ev.drug_class or "", None if mgkg is None else float(mgkg), ev.administration_id,
               _ADM_CODE.get(ev.status, "c"), mg=None if mg is None else float(mg))


def _order(r) -> tuple:
    return (r[0], r.oid if isinstance(r, Obs) else r.aid)


def _obs_key(o: Obs, low_alarms: bool) -> tuple:
    """Version order; the last resort between versions of equal rank and stamps is the more
    alarming value: the lower count (``low_alarms``), the higher temperature."""
    alarm = 0.0 if o.v is None else (-o.v if low_alarms else o.v)
    return (STATUS_RANK.get(o.st, 0), o.rep, o.ing, alarm, o.t)


def _adm_key(a: Adm) -> tuple:
    return (_ADM_RANK[a.st], a.rep, a.end or 0, a.mgkg or 0.0, a.mg or 0.0, a.t)


def merge_obs(rows: tuple[Obs, ...], new: Obs, low_alarms: bool = True) -> tuple[tuple[Obs, ...], int | None]:
    """Returns the new rows and the earliest time affected (None: nothing changed)."""
    old = None
    oid = new.oid
    for r in rows:
        if r.oid == oid and _same_result(r, new):
            old = r
            break
    if old is not None:
        if _obs_key(new, low_alarms) <= _obs_key(old, low_alarms):
            return rows, None
        out = [r for r in rows if r is not old]
        if old.v == new.v and old.t == new.t:  # same value, newer status: no conclusion moves
            insort(out, new, key=_order)
            return tuple(out), None
        insort(out, new, key=_order)
        return tuple(out), min(old.t, new.t)
    out = list(rows)
    insort(out, new, key=_order)
    return tuple(out), new.t


def _same_result(a: Obs, b: Obs) -> bool:
    """Versions of one result share its id; a cancellation (X, cannot obtain) is a version only
    of the result collected when it was: an order cancelled, recollected and resulted under the
    same order number is two results (the X is no version of the later count, and outranks none)."""
    return a.t == b.t or "X" not in (a.st, b.st)


def merge_adm(rows: tuple[Adm, ...], new: Adm) -> tuple[tuple[Adm, ...], int | None]:
    old = next((r for r in rows if r.aid == new.aid), None)
    if old is not None:
        if _adm_key(new) <= _adm_key(old):
            return rows, None
        out = [r for r in rows if r is not old]
        insort(out, new, key=_order)
        return tuple(out), min(old.t, new.t)
    out = list(rows)
    insort(out, new, key=_order)
    return tuple(out), new.t


def relevant_drug(ev: MedicationAdministration, config: DetectionConfig) -> bool:
    return ev.drug_class is not None and (ev.drug_class in (config.ivig_drug_class, "gcsf")
                                          or config.watch_for(ev.drug_class) is not None)


def cause_of(ev: Event) -> str:
    if isinstance(ev, MedicationAdministration):
        return "administration_updated" if ev.status in ("not-done", "entered-in-error") else "administration"
    return {"C": "corrected_result", "X": "deleted_result", "D": "deleted_result"}.get(ev.status, "new_result")
