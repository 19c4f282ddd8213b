"""Drug-associated (idiosyncratic) neutropenia: a new episode whose onset falls in a watched
drug's window after its last dose before onset (during treatment or within 7 days; 21-180 days
for late-onset neutropenia after rituximab). Only episodes with a known onset (a normal count
before) count. Recovery within ``drug_recovery_days`` of the last dose strengthens it; that is
reported on the recovery alert (``association``)."""
from __future__ import annotations

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.episodes import Episode
from neutrowatch.detection.findings import Adm, Finding

DAY = 86400


def suspected(episodes: list[Episode], adms: list[Adm], config: DetectionConfig) -> list[Finding]:
    out = []
    watched = [a for a in adms if a.st != "x" and config.watch_for(a.cls)]
    if not watched:
        return out
    for ep in episodes:
        if not ep.onset_known:
            continue
        t_on, oid, v = ep.start
        for cls in sorted({a.cls for a in watched}):
            before = [a for a in watched if a.cls == cls and a.t <= t_on]
            if not before:
                continue
            last = before[-1]
            days = (t_on - (last.end or last.t)) / DAY
            if last.end is not None and last.end >= t_on:
                days = 0.0  # during the administration
            window = next((w for w in config.watch_for(cls).windows_days  # type: ignore[union-attr]
                           if w[0] <= days <= w[1]), None)
            if window is None:
                continue
            out.append(Finding("drug_associated_neutropenia_suspected", f"{oid}:{cls}", t_on, v,
                               "warning", {"episode": ep, "drug_class": cls, "last": last,
                                           "first": before[0], "doses": len(before),
                                           "days_after_last_dose": round(days, 1),
                                           "window_days": list(window)}))
    return out


def association(ep: Episode, adms: list[Adm], config: DetectionConfig) -> dict | None:
    """For a recovered episode: the watched drug stopped before recovery within the window."""
    if ep.end is None:
        return None
    for a in reversed(adms):
        if a.st == "x" or not config.watch_for(a.cls) or a.t > ep.end[0]:
            continue
        if a.t < ep.start[0] - 180 * DAY:
            break
        days = (ep.end[0] - (a.end or a.t)) / DAY
        if 0 <= days <= config.drug_recovery_days:
            return {"drug_class": a.cls, "administration_id": a.aid,
                    "recovered_days_after_last_dose": round(days, 1)}
        return None
    return None
