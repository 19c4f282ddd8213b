"""Febrile neutropenia: a temperature >= 38.3 C once, or >= 38.0 C sustained for an hour (two
readings >= 38.0 at least an hour apart with none below in between), within 24 h of an ANC < 500
or < 1000 and falling (lower than the count before it). Fevers less than 72 h apart form one
episode (one alert), anchored on its first qualifying fever."""
from __future__ import annotations

from bisect import bisect_left, bisect_right

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.findings import Finding, Obs


def fevers(temps: list[Obs], config: DetectionConfig) -> list[tuple[Obs, str, Obs | None]]:
    """(reading, "single"|"sustained", the reading that began the sustained run)."""
    out = []
    run_start: Obs | None = None
    for r in temps:
        v = float(r.v)  # type: ignore[arg-type]
        if v < config.febrile_sustained_c:
            run_start = None
            continue
        run_start = run_start or r
        if v >= config.febrile_single_c:
            out.append((r, "single", None))
        elif r.t - run_start.t >= config.febrile_sustained_minutes * 60:
            out.append((r, "sustained", run_start))
    return out


def febrile(temps: list[Obs], anc: list[Obs], times: list[int],
            config: DetectionConfig) -> list[Finding]:
    out: list[Finding] = []
    win = int(config.febrile_anc_hours * 3600)
    gap = config.febrile_episode_gap_hours * 3600
    last_fever_t = None
    for r, how, began in fevers(temps, config):
        lo, hi = bisect_left(times, r.t - win), bisect_right(times, r.t + win)
        best = None
        for i in range(lo, hi):
            a = anc[i]
            falling = i > 0 and float(anc[i - 1].v) > float(a.v)  # type: ignore[arg-type]
            if a.v < config.severe_below or (a.v < config.febrile_falling_below and falling):  # type: ignore[operator]
                key = (abs(a.t - r.t), a.v)
                if best is None or key < best[0]:
                    best = (key, a, falling)
        if best is None:
            continue
        if last_fever_t is not None and r.t - last_fever_t <= gap:
            last_fever_t = r.t
            continue
        last_fever_t = r.t
        a = best[1]
        out.append(Finding("febrile_neutropenia", r.oid, max(r.t, a.t), float(a.v), "critical",  # type: ignore[arg-type]
                           {"fever": r, "how": how, "began": began, "anc": a,
                            "falling": best[2]}))
    return out
