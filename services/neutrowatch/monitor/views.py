"""What the API shows of a patient, computed from the stored state (pure functions).

The timeline covers the engine's bounded history (DetectionConfig.history_days / history_max_anc;
temperatures only within history_temperature_days of the newest result); older results are
summarised in the episode state and not listed. Grade limits and IVIG course figures come from the
engine's own functions, so the pages draw exactly what the rules decide on."""
from __future__ import annotations

from typing import Any

from neutrowatch.detection import DetectionConfig, PatientState, active_alerts
from neutrowatch.detection import ivig
from neutrowatch.detection.alerts import iso
from neutrowatch.detection.engine import kept_ids
from neutrowatch.detection.episodes import Carry, Track, fold
from neutrowatch.detection.figures import bound
from neutrowatch.detection.figures import num as _num
from neutrowatch.detection.findings import Obs
from neutrowatch.detection.grades import Limits, limits_for

DAY = 86400
PATTERN_KINDS = ("post_ivig_neutropenia_pattern", "cyclic_neutropenia_suspected",
                 "drug_associated_neutropenia_suspected", "chronic_neutropenia")


def _limits_at(state: PatientState, config: DetectionConfig):
    return lambda t: limits_for(config, state.patient_key, state.birth_date, t)


def _value(v: float | None) -> dict[str, Any]:
    """``value``, and ``comparator`` for a count reported as a bound ("<100")."""
    b = bound(v)
    return {"value": _num(v), "comparator": b} if b else {"value": _num(v)}


def anc_timeline(state: PatientState, meta: dict[str, Any], config: DetectionConfig) -> list[dict[str, Any]]:
    derived = set(meta.get("derived", ()))
    limits_at = _limits_at(state, config)
    window = config.ivig_nadir_days * DAY
    adms = [a for a in state.adms if a.st != "x"]
    out = []
    for o in state.anc:
        if o.v is None:
            continue
        lim = limits_at(o.t)
        linked = [{"administration_id": a.aid, "drug_class": a.cls, "started_at": iso(a.t),
                   **({"dose_mg_per_kg": _num(a.mgkg)} if a.mgkg is not None else {}),
                   **({"dose_mg": _num(a.mg)} if a.mg is not None else {}),
                   "days_after_start": round((o.t - a.t) / DAY, 2)}
                  for a in adms if 0 <= o.t - a.t <= window]
        out.append({"observation_id": o.oid, **_value(o.v), "unit": "cells/uL",
                    "collected_at": iso(o.t), "status": o.st, "grade": lim.grade(o.v),
                    "grade_profile": lim.profile,
                    "provenance": "derived" if o.oid in derived else "direct",
                    "linked_infusions": linked})
    return out


ADM_STATUS = {"c": "completed", "i": "in-progress", "s": "stopped", "x": "not-done"}
_LIMIT_FIELDS = ("profile", "basis", "normal", "mild", "moderate", "agranulocytosis")


def timeline(state: PatientState, meta: dict[str, Any], config: DetectionConfig) -> dict[str, Any]:
    """The body of GET /patients/{key}/anc: counts, the grade limits in force, administrations of
    IVIG, G-CSF and watched drugs, temperatures and the per-course IVIG figures."""
    return {"patient_key": state.patient_key, "unit": "cells/uL",
            "anc": anc_timeline(state, meta, config),
            "grade_limits": grade_limits(state, config),
            "administrations": administrations(state, config),
            "temperatures": temperatures(state),
            "fever_c": {"single": config.febrile_single_c, "sustained": config.febrile_sustained_c,
                        "sustained_minutes": config.febrile_sustained_minutes},
            "ivig_courses": ivig_courses(state, config)}


def grade_limits(state: PatientState, config: DetectionConfig) -> list[dict[str, Any]]:
    """The limits in force over the timeline as segments (they change with age bands): each from
    the first count graded under it; the first segment has no start, the last no end."""
    limits_at = _limits_at(state, config)
    times = [o.t for o in state.anc if o.v is not None] or [max((a.t for a in state.adms), default=0)]
    segments: list[tuple[int, Limits]] = []
    for t in times:
        lim = limits_at(t)
        if not segments or _limit_values(segments[-1][1]) != _limit_values(lim):
            segments.append((t, lim))
    out = []
    for i, (t, lim) in enumerate(segments):
        out.append({"from": iso(t) if i else None,
                    "to": iso(segments[i + 1][0]) if i + 1 < len(segments) else None,
                    **{f: _num(getattr(lim, f)) if f not in ("profile", "basis") else getattr(lim, f)
                       for f in _LIMIT_FIELDS}})
    return out


def _limit_values(lim: Limits) -> tuple:
    return tuple(getattr(lim, f) for f in _LIMIT_FIELDS)


def administrations(state: PatientState, config: DetectionConfig) -> list[dict[str, Any]]:
    return [{"administration_id": a.aid, "drug_class": a.cls, "started_at": iso(a.t),
             "ended_at": iso(a.end) if a.end is not None else None,
             "dose_mg_per_kg": _num(a.mgkg), "dose_mg": _num(a.mg), "status": ADM_STATUS.get(a.st, a.st),
             "role": "ivig" if a.cls == config.ivig_drug_class else
             "watched" if config.watch_for(a.cls) is not None else "other"}
            for a in state.adms]


def temperatures(state: PatientState) -> list[dict[str, Any]]:
    return [{"observation_id": o.oid, "value": _num(o.v), "unit": "Cel", "collected_at": iso(o.t),
             "status": o.st} for o in state.temps if o.v is not None]


def ivig_courses(state: PatientState, config: DetectionConfig) -> list[dict[str, Any]]:
    """Per IVIG course, as the engine measures it: pre-infusion, early (ivig_early_hours after),
    nadir (to ivig_nadir_days) and the best count before the next course."""
    live = [o for o in state.anc if o.v is not None]
    courses = ivig.courses([a for a in state.adms if a.st != "x"], config)
    if courses:
        ivig.measure(courses, live, [o.t for o in live], _limits_at(state, config), config)
    return [{"started_at": iso(c.start), "administration_ids": [a.aid for a in c.adms],
             "dose_mg_per_kg": _num(c.mgkg), "dose_mg": _num(c.mg), "interval_days": c.interval_days,
             "pre": _point(c.pre, c.start), "early": _point(c.early, c.start),
             "nadir": _point(c.nadir, c.start), "recovery_before_next": _point(c.recovery, c.start),
             "recovered": c.recovered, "dip": c.dip if c.evaluable else None}
            for c in courses]


def _point(o: Obs | None, start: int) -> dict[str, Any] | None:
    if o is None:
        return None
    return {"observation_id": o.oid, **_value(o.v), "collected_at": iso(o.t),
            "days_after_start": round((o.t - start) / DAY, 2)}


def _episode(name: str, track: Track, chronic: bool = False) -> dict[str, Any] | None:
    if not track.open:
        return None
    t, oid, v = track.start
    nt, noid, nv = track.nadir or track.start
    return {"kind": name, "started_at": iso(t), "start_observation_id": oid, "start_value": _num(v),
            "nadir_at": iso(nt), "nadir_observation_id": noid, "nadir_value": _num(nv),
            "chronic": chronic}


def patient_state(state: PatientState, config: DetectionConfig,
                  sent: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``sent``: the patient's alert records by id, for patterns that still stand but whose
    evidence has left the kept history (engine.kept_ids); they are listed as they were sent."""
    live = [o for o in state.anc if o.v is not None]
    carry = fold(live, _limits_at(state, config), state.carry or Carry(), config, emit=False).carry
    episodes = [e for e in (_episode("neutropenia", carry.neutropenia, carry.stretch.chronic), _episode("severe", carry.severe),
                            _episode("agranulocytosis", carry.agran)) if e]
    standing = [a.to_record() for a in active_alerts(state, config) if a.kind in PATTERN_KINDS]
    standing += [sent[aid] for aid in sorted(kept_ids(state)) if sent and aid in sent]
    patterns = [{k: a[k] for k in ("kind", "alert_id", "severity", "observed_at", "summary")}
                for a in standing if a["kind"] in PATTERN_KINDS]
    last = live[-1] if live else None
    return {
        "patient_key": state.patient_key,
        "current_grade": carry.grade,
        "last_anc": None if last is None else {"observation_id": last.oid, **_value(last.v),
                                               "unit": "cells/uL", "collected_at": iso(last.t)},
        "open_episodes": episodes,
        "detected_patterns": patterns,
        "history": {"anc_results": len(live), "temperatures": len(state.temps),
                    "administrations": len(state.adms),
                    "summarised_before": iso(state.horizon) if state.horizon else None,
                    "late_results_ignored": state.late_ignored},
        "alerts_emitted": state.ledger.standing_count(),
    }
