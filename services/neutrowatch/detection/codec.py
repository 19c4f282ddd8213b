"""The stored form of a PatientState: ``dump(state) -> dict`` and ``load(doc) -> PatientState``.

Compact JSON: times as deltas in seconds, columns, common id prefixes factored out. ``"v"`` is
the format's version; ``load`` reads every version ever written (states already in Redis) and
``dump`` writes the current one. Only the state store (and tools that store states) use this
module: the model keeps plain typed fields.

Version 2 (as version 1, which states written before it still have, except where said):
  pk, pid, aa, bd                patient key, id, assigning authority, birth date
  a, t                           ANC and temperature columns: t (deltas), v, o (ids less p, the
                                 common prefix), s (statuses), r ([index, reported-at s] where
                                 known), n ([index, ingested-at us] where known). Version 1: no n;
                                 r packs both, reported * 10^16 + ingested us (or reported alone,
                                 below 10^12, without an ingest stamp)
  m                              administrations: t, e (end - start), c (class), d (mg/kg), g (mg),
                                 o, p, s, r
  c                              the fold carry of the dropped prefix: [grade, pending,
                                 pending_grade, seen_normal, neutropenia, severe, agran, stretch],
                                 each track [open, start, nadir, above, last, back], the stretch
                                 (the chronic clock) [start, nadir, chronic, prev, rise_from, peak,
                                 rise]. Version 1: no stretch, and tracks [open, start, nadir,
                                 above, chronic, last, back] (or 5 items, before last/back: last =
                                 the nadir's time); the stretch is the neutropenia episode's
  ip                             dropped IVIG courses [start, mg/kg(, mg)]
  h, li, cy                      horizon, late results ignored, cyclic search cache
  e                              ledger rows [id, kind, t] (sent), [id, kind, t, "grades", from,
                                 to], [id, kind, t, "as", sent_id(, from, to)], [id, kind, t,
                                 "kept"|"unsent"], [id, kind, t, "withdrawn", sent_id]
"""
from __future__ import annotations

import os
from itertools import accumulate
from typing import Any

from neutrowatch.detection.episodes import Carry, Stretch, Track
from neutrowatch.detection.findings import Adm, Obs
from neutrowatch.detection.ledger import KEPT, SENT, UNSENT, WITHDRAWN, Entry, Ledger
from neutrowatch.detection.state import PatientState

VERSION = 2
READS = (1, 2)


def dump(state: PatientState) -> dict[str, Any]:
    d: dict[str, Any] = {"v": VERSION, "pk": state.patient_key, "pid": state.patient_id}
    if state.assigning_authority is not None:
        d["aa"] = state.assigning_authority
    if state.birth_date:
        d["bd"] = state.birth_date
    if state.anc:
        d["a"] = _obs_cols(state.anc)
    if state.temps:
        d["t"] = _obs_cols(state.temps)
    if state.adms:
        d["m"] = _adm_cols(state.adms)
    if state.carry is not None:
        d["c"] = _carry_row(state.carry)
    if state.ivig_prior:
        d["ip"] = [list(x if x[2] is not None else x[:2]) for x in state.ivig_prior]
    if state.horizon is not None:
        d["h"] = state.horizon
    if state.ledger:
        d["e"] = [_entry_row(aid, state.ledger.entries[aid]) for aid in sorted(state.ledger)]
    if state.cyclic:
        d["cy"] = state.cyclic
    if state.late_ignored:
        d["li"] = state.late_ignored
    return d


def load(d: dict[str, Any]) -> PatientState:
    version = d.get("v")
    if version not in READS:
        raise ValueError(f"unsupported patient state version {version!r}")
    return PatientState(
        patient_key=d.get("pk", ""), patient_id=d.get("pid", ""),
        assigning_authority=d.get("aa"), birth_date=d.get("bd"),
        anc=_obs_rows(d.get("a"), version), temps=_obs_rows(d.get("t"), version),
        adms=_adm_rows(d.get("m")),
        carry=(_carry if version == VERSION else _carry_v1)(d["c"]) if d.get("c") else None,
        ivig_prior=tuple((int(x[0]), x[1], x[2] if len(x) > 2 else None) for x in d.get("ip", ())),
        horizon=d.get("h"), ledger=Ledger({row[0]: _entry(row[1:]) for row in d.get("e", ())}),
        cyclic=d.get("cy"), late_ignored=d.get("li", 0),
    )


# ---------------------------------------------------------------------------- ledger

_AS, _GRADES = "as", "grades"


def _entry_row(aid: str, e: Entry) -> list:
    head = [aid, e.kind, e.t]
    if e.status in (KEPT, UNSENT):
        return head + [e.status]
    if e.status == WITHDRAWN:
        return head + [WITHDRAWN, e.sent_as]
    grades = list(e.grades) if e.grades else []
    if e.sent_as is not None:
        return head + [_AS, e.sent_as] + grades
    return head + [_GRADES] + grades if grades else head


def _entry(row: list) -> Entry:
    kind, t, *rest = row
    if not rest:
        return Entry(kind, t)
    tag = rest[0]
    if tag in (KEPT, UNSENT):
        return Entry(kind, t, tag)
    if tag == WITHDRAWN:
        return Entry(kind, t, WITHDRAWN, rest[1])
    if tag == _GRADES:
        return Entry(kind, t, SENT, None, (rest[1], rest[2]))
    if tag == _AS:
        return Entry(kind, t, SENT, rest[1], (rest[2], rest[3]) if len(rest) == 4 else None)
    raise ValueError(f"unknown ledger entry {row!r}")


# ---------------------------------------------------------------------------- fold carry

def _carry_row(c: Carry) -> list:
    return [c.grade, c.pending, c.pending_grade, int(c.seen_normal), _track_row(c.neutropenia),
            _track_row(c.severe), _track_row(c.agran), _stretch_row(c.stretch)]


def _carry(row: list) -> Carry:
    return Carry(row[0], row[1], row[2], bool(row[3]), _track(row[4]), _track(row[5]), _track(row[6]),
                 _stretch(row[7]))


def _track_row(tr: Track) -> list:
    return [int(tr.open), list(tr.start), list(tr.nadir), tr.above, tr.last, list(tr.back)]


def _track(row: list) -> Track:
    return Track(bool(row[0]), tuple(row[1]), tuple(row[2]), row[3], row[4], tuple(row[5]))


def _stretch_row(s: Stretch) -> list:
    return [list(s.start), list(s.nadir), int(s.chronic), s.prev, s.rise_from, list(s.peak),
            [s.rise[0], s.rise[1], list(s.rise[2])] if s.rise else []]


def _stretch(row: list) -> Stretch:
    rise = (row[6][0], row[6][1], tuple(row[6][2])) if row[6] else ()
    return Stretch(tuple(row[0]), tuple(row[1]), bool(row[2]), row[3], row[4], tuple(row[5]), rise)


def _carry_v1(row: list) -> Carry:
    """A version 1 carry: the chronic clock was the neutropenia episode (its start, nadir and
    chronic flag; a result back above normal since its last one below begins a rise)."""
    tracks = [_track_v1(r) for r in row[4:7]]
    n, chronic = tracks[0]
    stretch = Stretch()
    if n.open:
        back = n.back[0] if n.back else 0
        stretch = Stretch(n.start, n.nadir, chronic, max(n.last, back), back, n.back)
    return Carry(row[0], row[1], row[2], bool(row[3]), n, tracks[1][0], tracks[2][0], stretch)


def _track_v1(row: list) -> tuple[Track, bool]:
    start, nadir = tuple(row[1]), tuple(row[2])
    if len(row) > 5:
        return Track(bool(row[0]), start, nadir, row[3], row[5], tuple(row[6])), bool(row[4])
    # written before ``last`` and ``back``: the latest result below the limit such a state names
    # is the nadir (so the gap rule errs towards keeping the episode); ``back`` is unknown
    last = nadir[0] if nadir else (start[0] if start else 0)
    return Track(bool(row[0]), start, nadir, row[3], last, ()), bool(row[4])


# ---------------------------------------------------------------------------- columns

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
    ts, vs, oids, sts, reps, ings = zip(*rows)
    prefix, ids = _ids(oids)
    d: dict[str, Any] = {"t": _deltas(ts), "v": _nums(vs), "o": ids, "s": "".join(sts)}
    if prefix:
        d["p"] = prefix
    if any(reps):
        d["r"] = [[i, rep] for i, rep in enumerate(reps) if rep]
    if any(ings):
        d["n"] = [[i, ing] for i, ing in enumerate(ings) if ing]
    return d


def _obs_rows(d: dict[str, Any] | None, version: int) -> tuple[Obs, ...]:
    if not d:
        return ()
    p = d.get("p", "")
    ts, vs, os_, ss = _undelta(d["t"]), _floats(d["v"]), d["o"], d["s"]
    if p:
        os_ = [p + o for o in os_]
    reps, ings = [0] * len(ts), [0] * len(ts)
    for i, rep in d.get("r", ()):
        reps[i], ings[i] = (rep, 0) if version == VERSION else _unpacked_v1(rep)
    for i, ing in d.get("n", ()):
        ings[i] = ing
    new = tuple.__new__
    return tuple([new(Obs, row) for row in zip(ts, vs, os_, ss, reps, ings)])


def _unpacked_v1(rep: int) -> tuple[int, int]:
    """Version 1's packed stamps: (reported-at s, ingested-at us)."""
    if -10 ** 12 < rep < 10 ** 12:  # reported-at alone: no ingest stamp
        return rep, 0
    return divmod(rep, 10 ** 16)


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
