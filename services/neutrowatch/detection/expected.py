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
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Callable

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.findings import Finding, Obs
from neutrowatch.detection.grades import RANK, Limits
from neutrowatch.detection.ivig import Course

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
            lim = limits_at(anc[i].t)
            if anc[i].v < max(lim.agranulocytosis, usual - config.ivig_expected_margin):  # type: ignore[operator]
                deviation = (i, "deeper")
                break
            expected.append(i)
        if deviation is None:
            tail = bisect_right(times, nxt - 1) if nxt is not None else len(anc)
            late = next((i for i in range(hi, tail) if anc[i].v < limits_at(anc[i].t).severe), None)  # type: ignore[operator]
            deviation = None if late is None else (late, "unrecovered")
        explained = [at[i] for i in expected if i in at and _explained(findings[at[i]])]
        dipped = [i for i in expected if c.pre is not None and _dip(anc[i], c, limits_at, config)]
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


def _explained(f: Finding) -> bool:
    """An onset, a fall or a worsening grade within the course: what the dip explains."""
    return f.kind != "agranulocytosis" and not f.ctx.get("improving") and (
        f.kind != "grade_change" or RANK[f.ctx["to"]] > RANK["normal"])


def _dip(o: Obs, c: Course, limits_at: Callable[[int], Limits], config: DetectionConfig) -> bool:
    return o.v <= c.pre.v * config.ivig_dip_fraction and o.v < limits_at(o.t).normal  # type: ignore[operator,union-attr]


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
