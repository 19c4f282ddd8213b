"""What the API shows of a patient, computed from the stored state (pure functions).

The timeline covers the engine's bounded history (DetectionConfig.history_days / history_max_anc);
older results are summarised in the episode state and not listed."""
from __future__ import annotations

from typing import Any

from neutrowatch.detection import DetectionConfig, PatientState, active_alerts
from neutrowatch.detection.alerts import iso
from neutrowatch.detection.episodes import Carry, Track, fold
from neutrowatch.detection.grades import limits_for

DAY = 86400
PATTERN_KINDS = ("post_ivig_neutropenia_pattern", "cyclic_neutropenia_suspected",
                 "drug_associated_neutropenia_suspected", "chronic_neutropenia")


def _limits_at(state: PatientState, config: DetectionConfig):
    return lambda t: limits_for(config, state.patient_key, state.birth_date, t)


def _num(v: float | None) -> float | int | None:
    return int(v) if v is not None and float(v).is_integer() else v


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
                   "days_after_start": round((o.t - a.t) / DAY, 2)}
                  for a in adms if 0 <= o.t - a.t <= window]
        out.append({"observation_id": o.oid, "value": _num(o.v), "unit": "cells/uL",
                    "collected_at": iso(o.t), "status": o.st, "grade": lim.grade(o.v),
                    "grade_profile": lim.profile,
                    "provenance": "derived" if o.oid in derived else "direct",
                    "linked_infusions": linked})
    return out


def _episode(name: str, track: Track) -> dict[str, Any] | None:
    if not track.open:
        return None
    t, oid, v = track.start
    nt, noid, nv = track.nadir or track.start
    return {"kind": name, "started_at": iso(t), "start_observation_id": oid, "start_value": _num(v),
            "nadir_at": iso(nt), "nadir_observation_id": noid, "nadir_value": _num(nv),
            "chronic": track.chronic}


def patient_state(state: PatientState, config: DetectionConfig) -> dict[str, Any]:
    live = [o for o in state.anc if o.v is not None]
    carry = fold(live, _limits_at(state, config), Carry.from_list(state.carry), config, emit=False).carry
    episodes = [e for e in (_episode("neutropenia", carry.neutropenia), _episode("severe", carry.severe),
                            _episode("agranulocytosis", carry.agran)) if e]
    patterns = [{"kind": a.kind, "alert_id": a.alert_id, "severity": a.severity,
                 "observed_at": a.observed_at, "summary": a.summary}
                for a in active_alerts(state, config) if a.kind in PATTERN_KINDS]
    last = live[-1] if live else None
    return {
        "patient_key": state.patient_key,
        "current_grade": carry.grade,
        "last_anc": None if last is None else {"observation_id": last.oid, "value": _num(last.v),
                                               "unit": "cells/uL", "collected_at": iso(last.t)},
        "open_episodes": episodes,
        "detected_patterns": patterns,
        "history": {"anc_results": len(live), "temperatures": len(state.temps),
                    "administrations": len(state.adms),
                    "summarised_before": iso(state.horizon) if state.horizon else None,
                    "late_results_ignored": state.late_ignored},
        "alerts_emitted": len(state.emitted),
    }
