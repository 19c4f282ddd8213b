"""The causal fold over the ANC series: grades, episodes (neutropenia, severe, agranulocytosis),
recovery, chronicity and rapid decline.

An episode below a limit begins at the first result under it and ends only when
``config.confirmations`` consecutive results are back at or above it (one normal value inside an
episode does not end it, so an ongoing episode never re-alerts). The fold is causal: a finding at a
result depends only on results collected up to it (confirmation flags aside), so appending later
results never changes earlier conclusions. The fold state (``Carry``) is what summarises results
dropped from the bounded history.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.findings import Finding, Obs
from neutrowatch.detection.grades import RANK, Limits, worse

DAY = 86400


@dataclass
class Track:
    """Hysteresis episode below one limit: open, start (t, oid, value), nadir, run of results above."""

    open: bool = False
    start: tuple = ()  # (t, oid, v)
    nadir: tuple = ()  # (t, oid, v)
    above: int = 0
    chronic: bool = False

    def to_list(self) -> list:
        return [int(self.open), list(self.start), list(self.nadir), self.above, int(self.chronic)]

    @classmethod
    def from_list(cls, data: list) -> "Track":
        return cls(bool(data[0]), tuple(data[1]), tuple(data[2]), data[3], bool(data[4]))


@dataclass
class Carry:
    """Fold state: the summary of every result before the current one."""

    grade: str | None = None
    pending: int = 0  # consecutive results better than ``grade``
    pending_grade: str = "normal"
    seen_normal: bool = False  # a normal count preceded (an onset time is known)
    neutropenia: Track = field(default_factory=Track)
    severe: Track = field(default_factory=Track)
    agran: Track = field(default_factory=Track)

    def to_list(self) -> list:
        return [self.grade, self.pending, self.pending_grade, int(self.seen_normal),
                self.neutropenia.to_list(), self.severe.to_list(), self.agran.to_list()]

    @classmethod
    def from_list(cls, d: list | None) -> "Carry":
        if not d:
            return cls()
        return cls(d[0], d[1], d[2], bool(d[3]), Track.from_list(d[4]), Track.from_list(d[5]),
                   Track.from_list(d[6]))

    def copy(self) -> "Carry":
        return Carry.from_list(self.to_list())


@dataclass
class Episode:
    """A neutropenia episode as the other rules see it."""

    start: tuple  # (t, oid, v)
    onset_known: bool  # a normal count preceded it
    end: tuple | None = None  # (t, oid, v) of the result that confirmed recovery
    nadir: tuple = ()


@dataclass
class FoldResult:
    carry: Carry
    findings: list[Finding]
    episodes: list[Episode]
    limits: list[Limits]  # per live entry


def fold(entries: list[Obs], limits_at: Callable[[int], Limits], carry: Carry,
         config: DetectionConfig, emit: bool = True) -> FoldResult:
    """Run the machines over ``entries`` (live, time-ordered) starting from ``carry``."""
    c = carry.copy()
    findings: list[Finding] = []
    episodes: list[Episode] = []
    lims: list[Limits] = []
    grades: list[str] = []
    if c.neutropenia.open:
        episodes.append(Episode(c.neutropenia.start, True, None, c.neutropenia.nadir))
    rapid_prev = False
    window = config.rapid_decline_hours * 3600
    for i, e in enumerate(entries):
        lim = limits_at(e.t)
        lims.append(lim)
        v = float(e.v)  # type: ignore[arg-type]
        g = lim.grade(v)
        grades.append(g)
        here: list[Finding] = []
        # --- episodes
        agran_on = _track(c.agran, e, v < lim.agranulocytosis, config)
        severe_on = _track(c.severe, e, v < config.severe_below, config)
        n = c.neutropenia
        was_open = n.open
        recovered = _track(n, e, v < lim.normal, config) == "end"
        if n.open and not was_open:
            episodes.append(Episode(n.start, c.seen_normal, None, n.nadir))
        elif n.open and episodes:
            episodes[-1].nadir = n.nadir
        if recovered and episodes:
            episodes[-1].end, episodes[-1].nadir = (e.t, e.oid, v), n.nadir
        if recovered:
            here.append(Finding("recovery", n.start[1], e.t, v, "info",
                                {"start": n.start, "nadir": n.nadir, "end_index": i,
                                 "limits": lim, "episode": len(episodes) - 1}))
        if n.open and not n.chronic and e.t - n.start[0] > config.chronic_days * DAY:
            n.chronic = True
            here.append(Finding("chronic_neutropenia", n.start[1], e.t, v, "warning",
                                {"start": n.start, "nadir": n.nadir, "index": i, "limits": lim}))
        if v >= lim.normal:
            c.seen_normal = True
        # --- rapid decline
        ref = None
        if v < config.rapid_decline_below:
            j = i - 1
            while j >= 0 and e.t - entries[j].t <= window:
                if float(entries[j].v) * config.rapid_decline_fraction >= v:  # type: ignore[arg-type]
                    if ref is None or float(entries[j].v) > float(entries[ref].v):  # type: ignore[arg-type]
                        ref = j
                j -= 1
        rapid = ref is not None and not rapid_prev
        rapid_prev = ref is not None
        # --- grade machine
        change = _grade_step(c, g)
        onset = "agranulocytosis" if agran_on == "start" else (
            "severe_neutropenia" if severe_on == "start" else None)
        if onset:
            here.append(Finding(onset, e.oid, e.t, v, "critical",
                                {"index": i, "limits": lim, "from": change[0] if change else None,
                                 "rapid_from": ref}))
        elif rapid:
            here.append(Finding("rapid_decline", e.oid, e.t, v, "warning",
                                {"index": i, "ref": ref, "limits": lim,
                                 "from": change[0] if change else None}))
        elif change and change[1] != "normal":
            frm, to = change
            sev = "warning" if frm is None or RANK[to] > RANK[frm] else "info"
            here.append(Finding("grade_change", f"{e.oid}:{to}", e.t, v, sev,
                                {"index": i, "from": frm, "to": to, "limits": lim,
                                 "improving": sev == "info"}))
        if emit:
            findings.extend(here)
    if emit:
        findings = [_confirm(f, grades) for f in findings]
    return FoldResult(c, findings, episodes, lims)


def _track(tr: Track, e: Obs, below: bool, config: DetectionConfig) -> str | None:
    v = float(e.v)  # type: ignore[arg-type]
    if below:
        tr.above = 0
        if not tr.open:
            tr.open, tr.start, tr.nadir, tr.chronic = True, (e.t, e.oid, v), (e.t, e.oid, v), False
            return "start"
        if v < tr.nadir[2]:
            tr.nadir = (e.t, e.oid, v)
        return None
    if tr.open:
        tr.above += 1
        if tr.above >= config.confirmations:
            tr.open, tr.above = False, 0
            return "end"
    return None


def _grade_step(c: Carry, g: str) -> tuple[str | None, str] | None:
    """Worsening counts at once; an improvement needs ``2`` consecutive better results."""
    if c.grade is None:
        c.grade = g
        return (None, g)
    if RANK[g] > RANK[c.grade]:
        frm, c.grade, c.pending = c.grade, g, 0
        return (frm, g)
    if RANK[g] < RANK[c.grade]:
        c.pending_grade = worse(c.pending_grade, g) if c.pending else g
        c.pending += 1
        if c.pending >= 2:
            frm, c.grade, c.pending = c.grade, c.pending_grade, 0
            return (frm, c.grade)
        return None
    c.pending = 0
    return None


def _confirm(f: Finding, grades: list[str]) -> Finding:
    """A worsening is confirmed when the next result is at least as bad."""
    i = f.ctx.get("index")
    if i is None or f.kind in ("recovery", "chronic_neutropenia"):
        return f
    target = RANK[grades[i]]
    nxt = grades[i + 1] if i + 1 < len(grades) else None
    f.ctx["confirmed"] = f.ctx.get("improving", False) or (nxt is not None and RANK[nxt] >= target)
    f.ctx["confirming_index"] = i + 1 if nxt is not None else None
    return f
