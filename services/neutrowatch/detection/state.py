"""Per-patient state: the normalised, bounded history plus what has been emitted.

Bound (DetectionConfig.history_*): ANC results within ``history_days`` (400) of the newest and at
most ``history_max_anc`` (96); temperatures within ``history_temperature_days`` (3) of the newest
ANC or temperature and at most ``history_max_temperatures`` (240); administrations within
``history_days`` and at most ``history_max_administrations`` (40). Results dropped from the front
are summarised in ``carry`` (the episode/grade fold state: open episodes with their start and
nadir, current grade, whether a normal count was seen) and ``ivig_prior`` (start, mg/kg and mg of
the last two dropped IVIG courses); ``horizon`` is the newest dropped collection time, and results
collected at or before it that arrive later are ignored (counted in ``late_ignored``). What was
emitted is in the ``ledger`` (ledger.py) while its deciding result is inside the history.
Deleted/cancelled results stay as tombstones (value None) so a late earlier version cannot
resurrect them.

The stored form is codec.py's; this is the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from neutrowatch.detection.episodes import Carry
from neutrowatch.detection.findings import Adm, Obs
from neutrowatch.detection.ledger import Ledger


@dataclass(frozen=True)
class PatientState:
    patient_key: str = ""
    patient_id: str = ""
    assigning_authority: str | None = None
    birth_date: str | None = None
    anc: tuple[Obs, ...] = ()
    temps: tuple[Obs, ...] = ()
    adms: tuple[Adm, ...] = ()
    carry: Carry | None = None  # the fold state after the dropped prefix
    ivig_prior: tuple[tuple[int, float | None, float | None], ...] = ()  # (start, mg/kg, mg)
    horizon: int | None = None
    ledger: Ledger = field(default_factory=Ledger)
    cyclic: list | None = None  # cyclic.CyclicCache.to_list()
    late_ignored: int = 0
    # derived, never stored or compared: where the last evaluation's fold stopped, so the next
    # event's evaluation resumes there (engine.evaluate checks it still applies)
    memo: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def empty(cls) -> "PatientState":
        return cls()

    def evolve(self, **changes: Any) -> "PatientState":
        """``dataclasses.replace`` without its per-call field walk (the engine evolves the state
        several times per event); only field names are accepted."""
        unknown = changes.keys() - _FIELDS
        if unknown:
            raise TypeError(f"unknown PatientState fields {sorted(unknown)}")
        new = object.__new__(PatientState)
        d = new.__dict__
        d.update(self.__dict__)
        d.update(changes)
        return new


_FIELDS = frozenset(f.name for f in fields(PatientState))
