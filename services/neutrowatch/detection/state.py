"""Per-patient state: the normalised, bounded history plus what has been emitted.

Bound (DetectionConfig.history_*): ANC results within ``history_days`` (400) of the newest and at
most ``history_max_anc`` (96); temperatures within ``history_temperature_days`` (3) of the newest
ANC or temperature and at most ``history_max_temperatures`` (240); administrations within
``history_days`` and at most ``history_max_administrations`` (40). Results dropped from the front
are summarised in ``carry`` (the episode/grade fold state: open episodes with their start and
nadir, current grade, whether a normal count was seen) and ``ivig_prior`` (start, mg/kg and mg of
the last two dropped IVIG courses); ``horizon`` is the newest dropped collection time, and results
collected at or before it that arrive later are ignored (counted in ``late_ignored``). Emitted
alerts are remembered (id -> kind, observed time; a grade change also the grades it announced;
see engine.KEPT for the settled and moved shapes) while their deciding result is inside the
history. Deleted/cancelled results stay as tombstones (value None) so a late earlier version
cannot resurrect them.

``to_dict`` is compact JSON (times as deltas in seconds, columns, common id prefixes factored out).
"""
from __future__ import annotations

import os
from itertools import accumulate
from dataclasses import dataclass, field, fields
from typing import Any

from neutrowatch.detection.findings import Adm, Obs

VERSION = 1


@dataclass(frozen=True)
class PatientState:
    patient_key: str = ""
    patient_id: str = ""
    assigning_authority: str | None = None
    birth_date: str | None = None
    anc: tuple[Obs, ...] = ()
    temps: tuple[Obs, ...] = ()
    adms: tuple[Adm, ...] = ()
    carry: list | None = None  # episodes.Carry.to_list() of the dropped prefix
    ivig_prior: tuple[tuple[int, float | None, float | None], ...] = ()  # (start, mg/kg, mg)
    horizon: int | None = None
    emitted: dict[str, tuple] = field(default_factory=dict)  # id -> (kind, t[, marker, ...])
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

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"v": VERSION, "pk": self.patient_key, "pid": self.patient_id}
        if self.assigning_authority is not None:
            d["aa"] = self.assigning_authority
        if self.birth_date:
            d["bd"] = self.birth_date
        if self.anc:
            d["a"] = _obs_cols(self.anc)
        if self.temps:
            d["t"] = _obs_cols(self.temps)
        if self.adms:
            d["m"] = _adm_cols(self.adms)
        if self.carry:
            d["c"] = self.carry
        if self.ivig_prior:
            d["ip"] = [list(x if x[2] is not None else x[:2]) for x in self.ivig_prior]
        if self.horizon is not None:
            d["h"] = self.horizon
        if self.emitted:
            ids = sorted(self.emitted)
            d["e"] = [[i, *self.emitted[i]] for i in ids]
        if self.cyclic:
            d["cy"] = self.cyclic
        if self.late_ignored:
            d["li"] = self.late_ignored
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PatientState":
        if d.get("v") != VERSION:
            raise ValueError(f"unsupported patient state version {d.get('v')!r}")
        return cls(
            patient_key=d.get("pk", ""), patient_id=d.get("pid", ""),
            assigning_authority=d.get("aa"), birth_date=d.get("bd"),
            anc=_obs_rows(d.get("a")), temps=_obs_rows(d.get("t")), adms=_adm_rows(d.get("m")),
            carry=d.get("c"), ivig_prior=tuple((int(x[0]), x[1], x[2] if len(x) > 2 else None)
                                               for x in d.get("ip", ())),
            horizon=d.get("h"), emitted={e[0]: tuple(e[1:]) for e in d.get("e", ())},
            cyclic=d.get("cy"), late_ignored=d.get("li", 0),
        )


_FIELDS = frozenset(f.name for f in fields(PatientState))


def _deltas(ts: tuple[int, ...]) -> list[int]:
    return [t - p for t, p in zip(ts, (0,) + ts[:-1])]


def _undelta(ds: list[int]) -> list[int]:
    return list(accumulate(ds))


def _ids(ids: tuple[str, ...]) -> tuple[str, list[str]]:
    prefix = os.path.commonprefix(ids) if len(ids) > 1 else ""
    if not prefix:
        return "", list(ids)
    n = len(prefix)
    return prefix, [i[n:] for i in ids]


def _num(v: float | None) -> float | int | None:
    return int(v) if v is not None and float(v).is_integer() else v


def _nums(vs: tuple[float | None, ...]) -> list[float | int | None]:
    # _num on each; values are floats (or None) in memory
    return [int(v) if v.__class__ is float and v.is_integer() else (v if v.__class__ is float else _num(v))
            for v in vs]


def _floats(vs: list) -> list[float | None]:
    # JSON keeps integral values as ints: back to the floats the engine made (lossless round trip)
    return [v if v is None or v.__class__ is float else float(v) for v in vs]


def _obs_cols(rows: tuple[Obs, ...]) -> dict[str, Any]:
    ts, vs, oids, sts, reps = zip(*rows)
    prefix, ids = _ids(oids)
    d: dict[str, Any] = {"t": _deltas(ts), "v": _nums(vs), "o": ids, "s": "".join(sts)}
    if prefix:
        d["p"] = prefix
    if any(reps):
        d["r"] = [[i, rep] for i, rep in enumerate(reps) if rep]
    return d


def _obs_rows(d: dict[str, Any] | None) -> tuple[Obs, ...]:
    if not d:
        return ()
    p = d.get("p", "")
    ts, vs, os_, ss = _undelta(d["t"]), _floats(d["v"]), d["o"], d["s"]
    if p:
        os_ = [p + o for o in os_]
    reps = [0] * len(ts)
    for i, rep in d.get("r", ()):
        reps[i] = rep
    new = tuple.__new__
    return tuple([new(Obs, row) for row in zip(ts, vs, os_, ss, reps)])


def _adm_cols(rows: tuple[Adm, ...]) -> dict[str, Any]:
    prefix, ids = _ids(tuple(r.aid for r in rows))
    d: dict[str, Any] = {"t": _deltas(tuple(r.t for r in rows)),
                         "e": [None if r.end is None else r.end - r.t for r in rows],
                         "c": [r.cls for r in rows], "d": [_num(r.mgkg) for r in rows],
                         "o": ids, "s": "".join(r.st for r in rows)}
    if any(r.mg is not None for r in rows):  # doses given as a mass; absent from older states
        d["g"] = [_num(r.mg) for r in rows]
    if prefix:
        d["p"] = prefix
    reps = [[i, r.rep] for i, r in enumerate(rows) if r.rep]
    if reps:
        d["r"] = reps
    return d


def _adm_rows(d: dict[str, Any] | None) -> tuple[Adm, ...]:
    if not d:
        return ()
    p = d.get("p", "")
    reps = {i: rep for i, rep in d.get("r", ())}
    mgs = _floats(d["g"]) if "g" in d else [None] * len(d["t"])
    return tuple(Adm(t, None if e is None else t + e, c, m, p + o, s, reps.get(i, 0), g)
                 for i, (t, e, c, m, o, s, g) in enumerate(zip(_undelta(d["t"]), d["e"], d["c"],
                                                               _floats(d["d"]), d["o"], d["s"], mgs)))
