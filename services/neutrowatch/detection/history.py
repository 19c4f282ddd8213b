"""Merging one event into the normalised history, and keeping the history bounded.

Versions of one result (same observation_id) are ordered by (status rank P < F < C < X/D,
reported_at, value); the greatest wins whatever the arrival order, so the history is a function
of the set of events. X/D leave a tombstone. Administrations likewise by status
(in-progress < completed/stopped < not-done/entered-in-error)."""
from __future__ import annotations

from bisect import insort
from dataclasses import dataclass

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
    value = None if ev.status in ("X", "D") else ev.value
    return Obs(epoch(ev.collected_at), None if value is None else float(value), ev.observation_id,
               ev.status, epoch(ev.reported_at) if ev.reported_at else 0)


def adm_row(ev: MedicationAdministration) -> Adm:
    mgkg = ev.dose.mg_per_kg if ev.dose is not None else None
    return Adm(epoch(ev.started_at), epoch(ev.ended_at) if ev.ended_at else None,
               ev.drug_class or "", None if mgkg is None else float(mgkg), ev.administration_id,
               _ADM_CODE.get(ev.status, "c"))


def _order(r) -> tuple:
    return (r[0], r.oid if isinstance(r, Obs) else r.aid)


def _obs_key(o: Obs) -> tuple:
    return (STATUS_RANK.get(o.st, 0), o.rep, -1.0 if o.v is None else o.v, o.t)


def _adm_key(a: Adm) -> tuple:
    return (_ADM_RANK[a.st], a.rep, a.end or 0, a.mgkg or 0.0, a.t)


def merge_obs(rows: tuple[Obs, ...], new: Obs) -> tuple[tuple[Obs, ...], int | None]:
    """Returns the new rows and the earliest time affected (None: nothing changed)."""
    old = None
    oid = new.oid
    for r in rows:
        if r.oid == oid:
            old = r
            break
    if old is not None:
        if _obs_key(new) <= _obs_key(old):
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
