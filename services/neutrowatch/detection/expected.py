"""Expected dips: what a known post-IVIG pattern explains is recorded, not paged.

Once the pattern holds (ivig.pattern: established at the course whose dip made it), each later
infusion's dip that stays within the patient's own course is an *expected dip*: the severe
neutropenia onset, rapid decline and worsening grade change it brings are replaced by one
``expected_dip`` finding (info) per course. The window of a course runs from its start to
``ivig_expected_recovery_days`` after its last administration (or the next course's start).

What deviates from the course pages, and says how (a severe_neutropenia finding with
``ctx["deviation"]``):
- ``deeper``: a count in the window more than ``ivig_expected_margin`` below the deepest nadir of
  the pattern's dips so far, or below the agranulocytosis limit;
- ``unrecovered``: a count still below the severe limit after the window and before the next
  course (the case report's dips recovered by day 15, before the next infusion).
Counts before the first deviation stay expected (the fold is causal: a later count never turns an
earlier dip into a page). Agranulocytosis and febrile neutropenia are never replaced.

The same for a suspected cyclic neutropenia (``cyclic``): once the periodicity is found, a trough
that arrives when the period predicts (within ``cyclic_lock_tolerance`` of a period) and is no
deeper than the cycle's nadir by more than ``ivig_expected_margin`` is an expected dip; a deeper
one pages as ``deeper``.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Callable

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.cyclic import Periodicity
from neutrowatch.detection.findings import Finding, Obs
from neutrowatch.detection.grades import RANK, Limits
from neutrowatch.detection.ivig import Course, is_dip

DAY = 86400
REPLACED = ("severe_neutropenia", "rapid_decline", "grade_change")


def apply(findings: list[Finding], cs: list[Course], pattern: Finding, anc: list[Obs] | tuple[Obs, ...],
          times: list[int], limits_at: Callable[[int], Limits], config: DetectionConfig) -> list[Finding]:
    """``findings`` with the expected dips of the courses after the pattern's in place of what
    they explain, and the deviations added."""
    decided = pattern.ctx["decided_at"]
    nadirs = [c.nadir.v for c in cs[:decided + 1] if c.evaluable and c.dip]  # type: ignore[union-attr]
    at = {f.ctx["index"]: k for k, f in enumerate(findings) if f.kind in REPLACED + ("agranulocytosis",)
          and "index" in f.ctx}
    drop: set[int] = set()
    out: list[Finding] = []
    for j in range(decided + 1, len(cs)):
        c, nxt = cs[j], cs[j + 1].start if j + 1 < len(cs) else None
        usual = min(nadirs)
        end = c.last + int(config.ivig_expected_recovery_days * DAY)
        if nxt is not None:
            end = min(end, nxt - 1)
        lo, hi = bisect_right(times, c.start), bisect_right(times, end)
        expected: list[int] = []
        deviation = None
        for i in range(lo, hi):
            if anc[i].v < _floor(anc[i].t, usual, limits_at, config):  # type: ignore[operator]
                deviation = (i, "deeper")
                break
            expected.append(i)
        if deviation is None:
            tail = bisect_right(times, nxt - 1) if nxt is not None else len(anc)
            late = next((i for i in range(hi, tail) if anc[i].v < limits_at(anc[i].t).severe), None)  # type: ignore[operator]
            deviation = None if late is None else (late, "unrecovered")
        explained = [at[i] for i in expected if i in at and _explained(findings[at[i]])]
        dipped = [i for i in expected if c.pre is not None and is_dip(anc[i], c.pre, limits_at, config)]
        if explained or dipped:
            drop.update(explained)
            low = min(dipped or expected, key=lambda i: anc[i].v)  # type: ignore[arg-type,return-value]
            out.append(Finding("expected_dip", c.adms[0].aid, anc[low].t, anc[low].v, "info",
                               {"course": c, "index": low, "usual_nadir": usual,
                                "margin": config.ivig_expected_margin,
                                "recovery_days": config.ivig_expected_recovery_days}))
            c.expected = True
        if deviation is not None and (c.expected or deviation[1] == "deeper"):
            out.append(_deviation(findings, at, deviation, c, usual, anc, limits_at, config, drop))
        if c.evaluable and c.dip:
            nadirs.append(c.nadir.v)  # type: ignore[union-attr]
    return [f for k, f in enumerate(findings) if k not in drop] + out


def cyclic(findings: list[Finding], hit: Periodicity, anc: list[Obs] | tuple[Obs, ...], times: list[int],
           limits_at: Callable[[int], Limits], config: DetectionConfig) -> list[Finding]:
    """``findings`` with the troughs after ``hit`` that the period predicts recorded as expected
    dips in place of what they explain, and deeper ones marked as deviations."""
    period = hit.period_days * DAY
    lo, hi = bisect_left(times, hit.t - period), bisect_right(times, hit.t)
    if lo == hi:  # the cycle's last trough has left the kept history: nothing to predict from
        return findings
    trough = min(anc[lo:hi], key=lambda o: o.v).t  # type: ignore[arg-type,return-value]
    tol = config.cyclic_lock_tolerance * period
    drop: set[int] = set()
    by_trough: dict[int, list[int]] = {}
    out: list[Finding] = []
    for k, f in enumerate(findings):
        if f.kind not in REPLACED or f.t <= hit.t or "index" not in f.ctx or not _explained(f):
            continue
        n = round((f.t - trough) / period)
        if n < 1 or abs(f.t - trough - n * period) > tol:
            continue
        if f.value < _floor(f.t, hit.nadir, limits_at, config):  # type: ignore[operator]
            if f.kind == "severe_neutropenia":
                drop.add(k)
                out.append(f._replace(ctx={**f.ctx, "deviation": "deeper_than_cycle", "usual_nadir": hit.nadir}))
            continue
        drop.add(k)
        by_trough.setdefault(n, []).append(k)
    for n, ks in by_trough.items():
        low = findings[min(ks, key=lambda k: findings[k].value)]  # type: ignore[arg-type,return-value]
        out.append(Finding("expected_dip", f"{hit.oid}:{n}", low.t, low.value, "info",
                           {"index": low.ctx["index"], "usual_nadir": hit.nadir, "period_days": hit.period_days,
                            "predicted": int(trough + n * period), "margin": config.ivig_expected_margin}))
    return [f for k, f in enumerate(findings) if k not in drop] + out


def _explained(f: Finding) -> bool:
    """An onset, a fall or a worsening grade within the course: what the dip explains."""
    return f.kind != "agranulocytosis" and not f.ctx.get("improving") and (
        f.kind != "grade_change" or RANK[f.ctx["to"]] > RANK["normal"])


def _floor(t: int, usual: float, limits_at: Callable[[int], Limits], config: DetectionConfig) -> float:
    """The lowest count still within the patient's course: the usual nadir less the margin, never
    below the agranulocytosis limit (which pages whatever the course)."""
    return max(limits_at(t).agranulocytosis, usual - config.ivig_expected_margin)


def _deviation(findings: list[Finding], at: dict[int, int], deviation: tuple[int, str], c: Course,
               usual: float, anc, limits_at, config: DetectionConfig, drop: set[int]) -> Finding:
    """The page for a deviation: the onset or agranulocytosis finding at that count when there is
    one (it pages anyway; now it says how the dip deviates), else a severe_neutropenia of its own."""
    i, how = deviation
    ctx = {"deviation": how, "course": c, "usual_nadir": usual,
           "recovery_days": config.ivig_expected_recovery_days}
    k = at.get(i)
    if k is not None and findings[k].kind in ("severe_neutropenia", "agranulocytosis"):
        drop.add(k)
        return findings[k]._replace(ctx={**findings[k].ctx, **ctx})
    o = anc[i]
    return Finding("severe_neutropenia", f"{o.oid}:{how}", o.t, o.v, "critical",
                   {"index": i, "limits": limits_at(o.t), "from": None, "rapid_from": None, **ctx})
