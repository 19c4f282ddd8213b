"""IVIG: infusion-locked dips (the eJHaem 2025 case) and the missing-baseline care gap.

Administrations closer than ``ivig_course_gap_days`` form one course (e.g. 1 g/kg on two days).
For each course: pre-infusion ANC (latest in the few days up to the start), the early count
(12-60 h after), the nadir over days 1-8 and whether the count recovered before the next course.
A course is a *dip* when nadir <= pre * ivig_dip_fraction and the nadir is below normal. The
pattern is established, causally, at the first course where >= ivig_min_cycles dips make up
>= ivig_min_share of the evaluable courses so far: one outlier course (an infection rise) does
not break it; a single transient dip never makes it.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Callable

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.findings import Adm, Finding, Obs
from neutrowatch.detection.grades import Limits

DAY, HOUR = 86400, 3600


@dataclass
class Course:
    adms: list[Adm]
    start: int
    last: int
    mgkg: float | None  # total per course (None unless every administration gave one)
    mg: float | None  # likewise, for doses given as a mass
    interval_days: float | None = None  # since the previous course
    pre: Obs | None = None
    early: Obs | None = None
    nadir: Obs | None = None
    recovery: Obs | None = None
    recovered: bool | None = None
    dip: bool = False
    expected: bool = False  # its dip was an expected one (expected.py)

    @property
    def evaluable(self) -> bool:
        return self.pre is not None and self.nadir is not None


def courses(adms: list[Adm], config: DetectionConfig) -> list[Course]:
    out: list[Course] = []
    for a in adms:
        if a.cls != config.ivig_drug_class or a.st == "x":
            continue
        if out and a.t - out[-1].start < config.ivig_course_gap_days * DAY:
            c = out[-1]
            c.adms.append(a)
            c.last = a.t
            c.mgkg, c.mg = _total(c.mgkg, a.mgkg), _total(c.mg, a.mg)
            continue
        prev = out[-1].start if out else None
        out.append(Course([a], a.t, a.t, a.mgkg, a.mg,
                          None if prev is None else round((a.t - prev) / DAY, 1)))
    return out


def _total(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else x + y


def measure(cs: list[Course], anc: list[Obs], times: list[int],
            limits_at: Callable[[int], Limits], config: DetectionConfig) -> None:
    """Fill in the per-course figures from the ANC series (``times`` = [e.t for e in anc])."""
    lo_h, hi_h = config.ivig_early_hours
    for k, c in enumerate(cs):
        nxt = cs[k + 1].start if k + 1 < len(cs) else None
        i = bisect_right(times, c.start) - 1
        if i >= 0 and c.start - anc[i].t <= config.ivig_pre_days * DAY:
            c.pre = anc[i]
        nadir_end = c.last + config.ivig_nadir_days * DAY
        if nxt is not None:
            nadir_end = min(nadir_end, nxt - 1)
        post = anc[bisect_right(times, c.start):bisect_right(times, nadir_end)]
        early = [e for e in post if c.last + lo_h * HOUR < e.t <= c.last + hi_h * HOUR]
        c.early = min(early, key=lambda e: e.v) if early else None  # type: ignore[arg-type,return-value]
        c.nadir = min(post, key=lambda e: e.v) if post else None  # type: ignore[arg-type,return-value]
        if c.nadir is not None and c.pre is not None:
            c.dip = is_dip(c.nadir, c.pre, limits_at, config)
            until = nxt if nxt is not None else c.start + 35 * DAY
            after = anc[bisect_right(times, c.nadir.t):bisect_right(times, until)]
            if after:
                c.recovery = max(after, key=lambda e: e.v)  # type: ignore[arg-type,return-value]
                c.recovered = (c.recovery.v >= c.pre.v * config.ivig_recovered_fraction  # type: ignore[operator]
                               or c.recovery.v >= limits_at(c.recovery.t).normal)  # type: ignore[operator]


def is_dip(o: Obs, pre: Obs, limits_at: Callable[[int], Limits], config: DetectionConfig) -> bool:
    """A count after an infusion is a dip: at most ``ivig_dip_fraction`` of the pre-infusion count,
    and below normal."""
    return o.v <= pre.v * config.ivig_dip_fraction and o.v < limits_at(o.t).normal  # type: ignore[operator]


def pattern(cs: list[Course], config: DetectionConfig) -> Finding | None:
    dips = evaluable = 0
    first = None
    for k, c in enumerate(cs):
        if not c.evaluable:
            continue
        evaluable += 1
        if c.dip:
            dips += 1
            first = c if first is None else first
        if dips >= config.ivig_min_cycles and dips >= config.ivig_min_share * evaluable and c.dip:
            return Finding("post_ivig_neutropenia_pattern", first.adms[0].aid,  # type: ignore[union-attr]
                           c.nadir.t, c.nadir.v, "warning",  # type: ignore[union-attr]
                           {"courses": cs, "decided_at": k, "dips": dips})
    return None


def baseline_missing(cs: list[Course], anc_times: list[int], config: DetectionConfig,
                     prior: list[tuple[int, float | None, float | None]] = ()) -> list[Finding]:
    """IVIG started (or restarted), dose raised or interval shortened with no ANC in the
    preceding ``ivig_baseline_days``. ``prior``: (start, mg/kg, mg) of courses already summarised."""
    out = []
    hist: list[tuple[int, float | None, float | None]] = list(prior)
    for c in cs:
        reasons = []
        if not hist or c.start - hist[-1][0] > config.ivig_restart_days * DAY:
            reasons.append("started" if not hist else "restarted")
        else:
            if _raised(c, hist[-1], config.ivig_escalation_ratio):
                reasons.append("dose_raised")
            if len(hist) >= 2:
                now, before = c.start - hist[-1][0], hist[-1][0] - hist[-2][0]
                if now < before * config.ivig_shortened_ratio:
                    reasons.append("interval_shortened")
        if reasons:
            lo = bisect_left(anc_times, c.start - int(config.ivig_baseline_days * DAY))
            hi = bisect_right(anc_times, c.start)
            if lo == hi:
                out.append(Finding("ivig_baseline_missing", c.adms[0].aid, c.start, None, "warning",
                                   {"course": c, "reasons": reasons,
                                    "previous": hist[-1] if hist else None,
                                    "previous_interval_days": round((hist[-1][0] - hist[-2][0]) / DAY, 1)
                                    if len(hist) >= 2 else None}))
        hist.append((c.start, c.mgkg, c.mg))
    return out


def _raised(c: Course, prev: tuple[int, float | None, float | None], ratio: float) -> bool:
    """The dose per kg rose by more than ``ratio`` when both courses give one, else the mass
    (a dose in g is never compared with one in g/kg)."""
    _, prev_mgkg, prev_mg = prev
    now, before = (c.mgkg, prev_mgkg) if c.mgkg is not None and prev_mgkg is not None else (c.mg, prev_mg)
    if now is None or not before:
        return False
    return now > before * ratio


def locked_period_days(cs: list[Course], config: DetectionConfig) -> float | None:
    """The median interval between IVIG courses, when there are at least two intervals and the
    counts fall after the infusions (dips in ``ivig_min_share`` of the evaluable courses): infusions
    given at the nadirs, with counts rising after them, do not explain an oscillation."""
    gaps = sorted(c.interval_days for c in cs if c.interval_days)
    evaluable = [c for c in cs if c.evaluable]
    if len(gaps) < 2 or not evaluable or sum(c.dip for c in evaluable) < config.ivig_min_share * len(evaluable):
        return None
    return gaps[len(gaps) // 2]
