"""Febrile neutropenia: a temperature >= 38.3 C once, or >= 38.0 C sustained for an hour (two
readings >= 38.0 at least an hour apart with none below in between and no two consecutive
readings more than 2 h apart), while the ANC is < 500, or < 1000 and falling (lower than the
count before it, collected at most 7 days earlier).

The ANC at a fever is the patient's latest count collected before it, if at most 72 h old (a newer
normal count supersedes an older low one; an agranulocytosis a day and a half old with no count
since is still the patient's count), or a count collected in the 24 h after it (the CBC drawn for
the fever). Limits are the patient's own (``Limits.severe``, ``Limits.mild``). Fevers less
than 72 h apart form one episode (one alert), anchored on its first qualifying fever. All figures
are settings (DetectionConfig.febrile_*)."""
from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Callable

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.findings import Finding, Obs
from neutrowatch.detection.grades import Limits


def fevers(temps: list[Obs], config: DetectionConfig) -> list[tuple[Obs, str, Obs | None]]:
    """(reading, "single"|"sustained", the reading that began the sustained run).

    A sustained run is consecutive readings >= febrile_sustained_c whose first and last are at
    least febrile_sustained_minutes apart, no two consecutive ones more than
    febrile_sustained_max_gap_minutes apart: two 38.1 readings two days apart say nothing about
    the hours between them, so a longer silence starts a new run (see that setting)."""
    out = []
    run_start: Obs | None = None
    prev_t: int | None = None
    max_gap = config.febrile_sustained_max_gap_minutes * 60
    for r in temps:
        v = float(r.v)  # type: ignore[arg-type]
        gap_ok = prev_t is not None and r.t - prev_t <= max_gap
        prev_t = r.t
        if v < config.febrile_sustained_c:
            run_start = None
            continue
        if run_start is None or not gap_ok:
            run_start = r
        if v >= config.febrile_single_c:
            out.append((r, "single", None))
        elif r.t - run_start.t >= config.febrile_sustained_minutes * 60:
            out.append((r, "sustained", run_start))
    return out


def febrile(temps: list[Obs], anc: list[Obs], times: list[int], limits_at: Callable[[int], Limits],
            config: DetectionConfig) -> list[Finding]:
    out: list[Finding] = []
    gap = config.febrile_episode_gap_hours * 3600
    last_fever_t = None
    for r, how, began in fevers(temps, config):
        found = _anc_at_fever(r.t, anc, times, limits_at, config)
        if found is None:
            continue
        if last_fever_t is not None and r.t - last_fever_t <= gap:
            last_fever_t = r.t
            continue
        last_fever_t = r.t
        a, before = found
        out.append(Finding("febrile_neutropenia", r.oid, max(r.t, a.t), float(a.v), "critical",  # type: ignore[arg-type]
                           {"fever": r, "how": how, "began": began, "anc": a,
                            "falling": before is not None, "previous": before,
                            "single_c": config.febrile_single_c,
                            "sustained_c": config.febrile_sustained_c,
                            "sustained_minutes": config.febrile_sustained_minutes}))
    return out


def _anc_at_fever(t: int, anc: list[Obs], times: list[int], limits_at: Callable[[int], Limits],
                  config: DetectionConfig) -> tuple[Obs, Obs | None] | None:
    """The qualifying count nearest the fever and, when it qualified by falling, the count it fell
    from; None when the patient's count at the fever does not qualify.

    Counts collected at the same time (a preliminary never finalised next to its final under
    another id, a direct and a derived count of one specimen) are all the patient's count at that
    time: each is judged, and of those that qualify the lowest is taken (the observation ids,
    which order them, say nothing about which is right)."""
    i = bisect_right(times, t)  # anc[:i] collected at or before the fever
    candidates: list[int] = []
    if i > 0 and t - times[i - 1] <= config.febrile_anc_lookback_hours * 3600:
        latest = bisect_left(times, times[i - 1])
        candidates += range(latest, i)  # every count collected at the latest time before the fever
    end = bisect_right(times, t + config.febrile_anc_hours * 3600)
    candidates += range(i, end)
    best = None
    for k in candidates:
        a = anc[k]
        lim = limits_at(a.t)
        v = float(a.v)  # type: ignore[arg-type]
        before = _falling_from(k, anc, times, config)
        if not (v < lim.severe
                or (before is not None and v < min(config.febrile_falling_below, lim.mild))):
            continue
        key = (abs(a.t - t), v)
        if best is None or key < best[0]:
            best = (key, a, before)
    return None if best is None else (best[1], best[2])


def _falling_from(k: int, anc: list[Obs], times: list[int], config: DetectionConfig) -> Obs | None:
    """The count before ``anc[k]``, if higher and at most ``febrile_falling_days`` earlier.

    "Before" is collected earlier: a count collected at the same time is the same moment, not a
    fall. When several counts share the latest earlier time, the highest of them is the one
    ``anc[k]`` is compared with (the conservative reading: any of them higher is a fall)."""
    a = anc[k]
    j = bisect_left(times, a.t)  # anc[:j] collected before anc[k]
    if j == 0 or a.t - times[j - 1] > config.febrile_falling_days * 86400:
        return None
    prev = max(anc[bisect_left(times, times[j - 1]):j], key=lambda o: float(o.v))  # type: ignore[arg-type]
    if float(prev.v) <= float(a.v):  # type: ignore[arg-type]
        return None
    return prev
