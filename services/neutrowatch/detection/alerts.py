"""The Alert record and how each finding reads: one sentence for a phone, structured evidence."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from neutrowatch.detection.config import DetectionConfig
from neutrowatch.detection.figures import bound as _bound
from neutrowatch.detection.figures import num as _num
from neutrowatch.detection.findings import Adm, Finding, Obs
from neutrowatch.domain.ids import stable_id

SCHEMA = "neutrowatch.alert.v1"


@dataclass(frozen=True)
class Alert:
    alert_id: str
    patient_id: str
    patient_key: str
    kind: str
    severity: str  # info | warning | critical
    observed_at: str  # ISO 8601 collection time of the deciding result
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    anc_cells_per_ul: float | None = None
    assigning_authority: str | None = None
    retracts_alert_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "schema": SCHEMA, "alert_id": self.alert_id, "patient_id": self.patient_id,
            "patient_key": self.patient_key, "kind": self.kind, "severity": self.severity,
            "observed_at": self.observed_at, "summary": self.summary, "evidence": self.evidence,
        }
        if self.assigning_authority is not None:
            rec["assigning_authority"] = self.assigning_authority
        if self.anc_cells_per_ul is not None:
            rec["anc_cells_per_ul"] = self.anc_cells_per_ul
        if self.retracts_alert_id is not None:
            rec["retracts_alert_id"] = self.retracts_alert_id
        return rec


def alert_id(patient_key: str, kind: str, anchor: str) -> str:
    key = (patient_key, kind, anchor)
    aid = _IDS.get(key)
    if aid is None:  # every evaluation names every finding: remember the hashes
        if len(_IDS) >= 65536:
            _IDS.clear()
        aid = _IDS[key] = stable_id("alert.v1", patient_key, kind, anchor)
    return aid


_IDS: dict[tuple[str, str, str], str] = {}


def again_id(sent_id: str) -> str:
    """The id of an alert holding again after the one sent as ``sent_id`` was withdrawn: news,
    so an id of its own (consumers keep one alert per id and drop a repeat as already seen)."""
    return stable_id("alert.v1", "again", sent_id)


def iso(t: int) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def obs(o: Obs | tuple | None) -> dict[str, Any] | None:
    if o is None:
        return None
    if isinstance(o, Obs):
        d = {"observation_id": o.oid, "value": _num(o.v), "unit": "cells/uL",
             "collected_at": iso(o.t), "status": o.st}
    else:
        t, oid, v = o  # an episode start/nadir summarised as (t, oid, value)
        d = {"observation_id": oid, "value": _num(v), "unit": "cells/uL", "collected_at": iso(t)}
    bound = _bound(o.v if isinstance(o, Obs) else o[2])
    if bound:
        d["comparator"] = bound  # reported as "<100": the count is below the value
    return d


def adm(a: Adm, interval_days: float | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"administration_id": a.aid, "drug_class": a.cls, "started_at": iso(a.t)}
    if a.end is not None:
        d["ended_at"] = iso(a.end)
    if a.mgkg is not None:
        d["dose_mg_per_kg"] = _num(a.mgkg)
    d.update(_dose_mg(a.mg))
    if interval_days is not None:
        d["interval_days"] = interval_days
    return d


def _dose_mg(mg: float | None) -> dict[str, Any]:
    """The evidence field of a dose given as a mass (none for a dose per kg)."""
    return {} if mg is None else {"dose_mg": _num(mg)}


def _doses(per_kg: list[float | None], mass: list[float | None]) -> str:
    """Doses for a text, as given: "600/1000 mg/kg", "70 g/90 g" (a mass from 1 g on in g), both
    ("1000 mg/kg, 70 g"), or "" when none is known."""
    kg = sorted({_num(d) for d in per_kg if d is not None})
    mg = sorted({m for m in mass if m is not None})
    return ", ".join(([f"{'/'.join(str(d) for d in kg)} mg/kg"] if kg else []) + (
        ["/".join(f"{_num(m / 1000)} g" if m >= 1000 else f"{_num(m)} mg" for m in mg)] if mg else []))


def _k(v: float | None) -> str:
    return "?" if v is None else f"{float(v) / 1000:.2g}".replace("e+03", "000") + " x10^3/uL"


def _cnt(v: float | None) -> str:
    """A count for a text: "400/uL", or "<100/uL" for one reported as below 100."""
    return "?" if v is None else f"{_bound(v)}{_num(v)}/uL"


def render(f: Finding, patient_key: str, patient_id: str, authority: str | None,
           anc: list[Obs], adms: list[Adm], config: DetectionConfig) -> Alert:
    """``config``: the settings the rules ran with (the texts and evidence give their figures)."""
    summary, evidence = RENDER[f.kind](f, anc, adms, config)
    evidence = {"rule": f.kind, **evidence}
    return Alert(alert_id(patient_key, f.kind, f.anchor), patient_id, patient_key, f.kind,
                 f.severity, iso(f.t), summary, evidence, _num(f.value), authority)


CAUSES = {"explained_by_ivig": "the oscillation follows the IVIG infusions",
          "expected_post_ivig_dip": "an IVIG infusion recorded since explains it: this patient's "
                                    "expected post-IVIG dip"}


def retraction(old_id: str, old_kind: str, old_t: int, cause: str, cause_id: str,
               patient_key: str, patient_id: str, authority: str | None) -> Alert:
    reason = CAUSES.get(cause) or cause.replace('_', ' ')
    summary = (f"Retracted: the {old_kind.replace('_', ' ')} alert for the result of "
               f"{iso(old_t)[:16].replace('T', ' ')} no longer holds ({reason}).")
    return Alert(stable_id("alert.v1", patient_key, "alert_retracted", old_id, cause_id),
                 patient_id, patient_key, "alert_retracted", "info", iso(old_t), summary,
                 {"rule": "alert_retracted", "retracted_alert_id": old_id,
                  "retracted_kind": old_kind, "cause": cause, "cause_event_id": cause_id},
                 None, authority, old_id)


# ----------------------------------------------------------------------------- per kind

def _at(anc: list[Obs], i: int | None) -> Obs | None:
    return anc[i] if i is not None and 0 <= i < len(anc) else None


def _expected_trough(f: Finding, anc, config):
    c = f.ctx
    s = (f"Expected cyclic trough: ANC {_cnt(f.value)}, when the ~{c['period_days']:g}-day cycle "
         f"predicts one ({iso(c['predicted'])[:10]}), no deeper than its usual nadir "
         f"{_cnt(c['usual_nadir'])}; recorded, not paged.")
    return s, {"period_days": c["period_days"], "predicted_at": iso(c["predicted"]),
               "usual_nadir": _num(c["usual_nadir"]), "margin": _num(c["margin"]),
               "observations": [obs(anc[c["index"]])]}


def _grade(f: Finding, anc, adms, config):
    c, lim = f.ctx, f.ctx["limits"]
    conf = "confirmed by 2 results" if c.get("confirmed") else "single result, not yet confirmed"
    prev = _at(anc, c["index"] - 1) if c.get("improving") else None
    counts = f"{_bound(prev.v)}{_num(prev.v)}, {_cnt(f.value)}" if prev else _cnt(f.value)
    if c["from"] is None:
        change = f"first count on record, grade {c['to']}"
    elif c.get("improving"):
        change = f"grade improved {c['from']} -> {c['to']}"
        conf = f"confirmed by 2 results at {c['to']} or better"
    else:
        change = f"grade changed {c['from']} -> {c['to']}"
    s = f"ANC {counts}: {change} ({conf})."
    return s, {"from": c["from"], "to": c["to"], "confirmed": bool(c.get("confirmed")),
               "thresholds": lim.as_evidence(),
               "observations": [x for x in (obs(_at(anc, c["index"] - 1) if c.get("improving") else None),
                                            obs(anc[c["index"]]),
                                            obs(_at(anc, c.get("confirming_index")))
                                            if c.get("confirmed") and not c.get("improving") else None) if x]}


def _onset(f: Finding, anc, adms, config):
    c, lim = f.ctx, f.ctx["limits"]
    below = lim.agranulocytosis if f.kind == "agranulocytosis" else lim.severe
    word = "Agranulocytosis" if f.kind == "agranulocytosis" else "Severe neutropenia"
    ref = _at(anc, c.get("rapid_from"))
    tail = f", down from {_cnt(ref.v)} within {_num(config.rapid_decline_hours)} h" if ref else ""
    conf = "" if c.get("confirmed") else " (single result, repeat to confirm)"
    what = _DEVIATION[c["deviation"]](f, c) if "deviation" in c else "new episode"
    s = f"{word}: {what}, ANC {_cnt(f.value)} (< {int(below)}/uL){tail}{conf}."
    ev = {"threshold_below": below, "thresholds": lim.as_evidence(), "previous_grade": c.get("from"),
          "confirmed": bool(c.get("confirmed")),
          "observations": [x for x in (obs(ref), obs(anc[c["index"]]),
                                       obs(_at(anc, c.get("confirming_index")))) if x]}
    if c.get("episode"):
        ev["episode_start"] = obs(c["episode"])
    if ref:
        ev["rapid_decline"] = {"from": obs(ref), "fraction": round(f.value / ref.v, 2)}  # type: ignore[operator]
    if "course" in c:
        ev["post_ivig_deviation"] = {"how": c["deviation"], "usual_nadir": _num(c["usual_nadir"]),
                                     "recovery_days": _num(c["recovery_days"]),
                                     "infusion": [adm(a) for a in c["course"].adms]}
    elif "deviation" in c:
        ev["cyclic_deviation"] = {"how": c["deviation"], "usual_nadir": _num(c["usual_nadir"])}
    return s, ev


def _deeper_than_cycle(f: Finding, c) -> str:
    return f"deeper than this patient's usual cyclic trough (nadir so far {_cnt(c['usual_nadir'])})"


def _days_after(f: Finding, c) -> str:
    days = _num(round((f.t - c["course"].start) / 86400, 1))
    return f"{days} day{'' if days == 1 else 's'} after the IVIG infusion of {iso(c['course'].start)[:10]}"


_DEVIATION = {
    "deeper": lambda f, c: (f"deeper than this patient's usual post-IVIG dip (deepest so far "
                            f"{_cnt(c['usual_nadir'])}), {_days_after(f, c)}"),
    "deeper_than_cycle": _deeper_than_cycle,
    "unrecovered": lambda f, c: (f"not recovered from the post-IVIG dip {_days_after(f, c)} (the usual "
                                 f"dip is back above the severe limit by day {_num(c['recovery_days'])})"),
}


def _expected(f: Finding, anc, adms, config):
    c = f.ctx
    if "course" not in c:
        return _expected_trough(f, anc, config)
    course = c["course"]
    given = _doses([course.mgkg], [course.mg])
    dose = f" ({given})" if given else ""
    s = (f"Expected post-IVIG dip: ANC {_cnt(f.value)} {_days_after(f, c)}{dose}, within this "
         f"patient's usual course (deepest post-IVIG nadir so far {_cnt(c['usual_nadir'])}); "
         f"recorded, not paged.")
    return s, {"usual_nadir": _num(c["usual_nadir"]), "margin": _num(c["margin"]),
               "recovery_days": _num(c["recovery_days"]),
               "days_after_infusion": _num(round((f.t - course.start) / 86400, 1)),
               "infusion": [adm(a) for a in course.adms], "dose_mg_per_kg": _num(course.mgkg),
               **_dose_mg(course.mg), "pre": obs(course.pre),
               "observations": [x for x in (obs(course.pre), obs(anc[c["index"]])) if x]}


def _rapid(f: Finding, anc, adms, config):
    c = f.ctx
    ref, cur = anc[c["ref"]], anc[c["index"]]
    hours = round((cur.t - ref.t) / 3600)
    s = (f"ANC fell {round(100 * (1 - f.value / ref.v))}% in {hours} h: "  # type: ignore[operator]
         f"{_cnt(ref.v)} -> {_cnt(f.value)}.")
    return s, {"fraction_threshold": _num(config.rapid_decline_fraction),
               "window_hours": _num(config.rapid_decline_hours), "below": _num(config.rapid_decline_below),
               "thresholds": c["limits"].as_evidence(), "observations": [obs(ref), obs(cur)]}


def _recovery(f: Finding, anc, adms, config):
    c = f.ctx
    i, n = c["end_index"], config.confirmations
    back = anc[max(0, i + 1 - n):i + 1]  # the results that confirmed it
    s = (f"Recovery: ANC back at or above {_cnt(c['limits'].normal)} on {n} result{'s' * (n != 1)} "
         f"({', '.join(_cnt(o.v) for o in back)}); episode began {iso(c['start'][0])[:10]}, "
         f"nadir {_cnt(c['nadir'][2])}.")
    ev = {"thresholds": c["limits"].as_evidence(), "episode_start": obs(c["start"]),
          "nadir": obs(c["nadir"]), "observations": [obs(o) for o in back]}
    if c.get("ivig_pattern"):
        ev["post_ivig_pattern_established"] = True
        s = s[:-1] + "; a post-IVIG pattern is established, so a rise (e.g. infection) is not its end."
    if c.get("association"):
        a = c["association"]
        ev["drug_association"] = a
        s = s[:-1] + (f"; {a['recovered_days_after_last_dose']} days after the last "
                      f"{a['drug_class']} dose, which supports a drug-associated cause.")
    return s, ev


def _chronic(f: Finding, anc, adms, config):
    c = f.ctx
    days = round((f.t - c["start"][0]) / 86400)
    rise = c.get("rise")
    lasting = f"; a transient rise to {_cnt(rise[2][2])} ({iso(rise[0])[:10]}, {_num(round((rise[1] - rise[0]) / 86400))} " \
              f"days, e.g. an infection response) did not end it" if rise else ""
    s = (f"Chronic neutropenia: below {_cnt(c['limits'].normal)} for {days} days without "
         f"{'lasting ' if rise else ''}recovery (since {iso(c['start'][0])[:10]}, nadir {_cnt(c['nadir'][2])}{lasting}).")
    ev = {"chronic_after_days": _num(config.chronic_days), "duration_days": days,
          "thresholds": c["limits"].as_evidence(), "episode_start": obs(c["start"]),
          "nadir": obs(c["nadir"]), "observations": [obs(c["start"]), obs(anc[c["index"]])]}
    if rise:
        ev["transient_rise"] = {"from": iso(rise[0]), "until": iso(rise[1]), "peak": obs(rise[2]),
                                "max_days": _num(config.chronic_rise_max_days)}
    return s, ev


def _cyclic(f: Finding, anc, adms, config):
    p = f.ctx["hit"]
    s = (f"Cyclic neutropenia suspected: counts oscillate with a period of ~{p.period_days:g} days "
         f"({p.points} counts over {p.span_days:g} days, nadir {_cnt(p.nadir)}, FAP {p.fap:.1g}).")
    pts = [o for o in anc if p.t - p.span_days * 86400 - 1 <= o.t <= p.t]
    return s, {"method": "lomb-scargle", "period_days": p.period_days, "power": p.power,
               "false_alarm_probability": p.fap, "points": p.points, "span_days": p.span_days,
               "nadir": _num(p.nadir), "peak": _num(p.peak),
               "search_days": [_num(config.cyclic_min_period_days), _num(config.cyclic_max_period_days)],
               "infusion_locked": False, "observations": [obs(o) for o in pts]}


def _cycle(c) -> dict[str, Any]:
    d: dict[str, Any] = {"infusion": [adm(a) for a in c.adms],
                         "dose_mg_per_kg": _num(c.mgkg), **_dose_mg(c.mg), "interval_days": c.interval_days,
                         "pre": obs(c.pre), "early_24_48h": obs(c.early), "nadir_days_1_7": obs(c.nadir),
                         "recovery_before_next": obs(c.recovery), "recovered": c.recovered,
                         "dip": c.dip, "expected": c.expected}
    return d


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else (xs[m - 1] + xs[m]) / 2


def _ivig(f: Finding, anc, adms, config):
    cs = [c for c in f.ctx["courses"] if c.evaluable]
    pre = [c.pre.v for c in cs]
    early = [c.early.v for c in cs if c.early is not None]
    nadir = [c.nadir.v for c in cs]
    dips = sum(c.dip for c in cs)
    doses = sorted({_num(c.mgkg) for c in cs if c.mgkg is not None})
    masses = sorted({c.mg for c in cs if c.mg is not None})
    gaps = [c.interval_days for c in cs if c.interval_days]
    given = _doses(doses, masses)
    dose_txt = f", dose {given}" if given else ""
    gap_txt = f" every ~{_median(gaps):g} days" if gaps else ""
    s = (f"Post-IVIG neutropenia pattern: dips after {dips} of {len(cs)} infusions{gap_txt}{dose_txt}; "
         f"median pre-infusion ANC {_cnt(_median(pre))}, 24-48 h {_cnt(_median(early))}, "
         f"nadir {_cnt(min(nadir))}.")
    return s, {"cycles": [_cycle(c) for c in f.ctx["courses"]], "dips": dips, "evaluable_cycles": len(cs),
               "median_pre": _num(_median(pre)), "range_pre": [_num(min(pre)), _num(max(pre))],
               "median_24_48h": _num(_median(early)),
               "range_24_48h": [_num(min(early)), _num(max(early))] if early else None,
               "nadir": _num(min(nadir)), "doses_mg_per_kg": doses,
               **({"doses_mg": [_num(m) for m in masses]} if masses else {}),
               "median_interval_days": _median(gaps),
               "observations": [o for c in cs for o in (obs(c.pre), obs(c.nadir))]}


def _baseline(f: Finding, anc, adms, config):
    c = f.ctx["course"]
    why = {"started": "IVIG started", "restarted": "IVIG restarted", "dose_raised": "IVIG dose raised",
           "interval_shortened": "IVIG interval shortened"}
    what = " and ".join(why[r] for r in f.ctx["reasons"])
    given = _doses([c.mgkg], [c.mg])
    dose = f" ({given})" if given else ""
    days = _num(config.ivig_baseline_days)
    s = f"{what}{dose} with no ANC in the preceding {days} days: obtain a CBC with differential."
    prev = f.ctx["previous"]
    return s, {"reasons": f.ctx["reasons"], "baseline_days": days,
               "administrations": [adm(a, c.interval_days) for a in c.adms],
               "previous_course": None if prev is None else {"started_at": iso(prev[0]),
                                                              "dose_mg_per_kg": _num(prev[1]),
                                                              **_dose_mg(prev[2])},
               "previous_interval_days": f.ctx["previous_interval_days"], "observations": []}


def _drug(f: Finding, anc, adms, config):
    c = f.ctx
    ep = c["episode"]
    when = (f"during {c['drug_class']} treatment" if c["days_after_last_dose"] <= 0 else
            f"{c['days_after_last_dose']:g} days after the last {c['drug_class']} dose")
    s = f"Neutropenia (ANC {_cnt(f.value)}) began {when}: drug-associated neutropenia suspected."
    return s, {"drug_class": c["drug_class"], "days_after_last_dose": c["days_after_last_dose"],
               "window_days": c["window_days"], "doses_before_onset": c["doses"],
               "administrations": [adm(c["first"]), adm(c["last"])] if c["first"] != c["last"]
               else [adm(c["last"])], "episode_start": obs(ep.start),
               "observations": [obs(ep.start)]}


def _febrile(f: Finding, anc, adms, config):
    c = f.ctx
    r, a, before = c["fever"], c["anc"], c["previous"]
    how = (f"once >= {c['single_c']:g} C" if c["how"] == "single"
           else f"sustained >= {c['sustained_c']:g} C for {c['sustained_minutes']:g} min")
    hours = round((a.t - r.t) / 3600)
    when = ("at the time of the fever" if hours == 0 else
            f"{-hours} h before the fever" if hours < 0 else f"{hours} h after the fever")
    falling = f", falling from {_cnt(before.v)}" if before is not None else ""
    s = f"FEBRILE NEUTROPENIA: temperature {r.v:g} C ({how}) with ANC {_cnt(a.v)}{falling}, collected {when}."
    temps = [x for x in (c["began"], r) if x]
    return s, {"temperature_single_c": c["single_c"], "temperature_sustained_c": c["sustained_c"],
               "sustained_minutes": c["sustained_minutes"], "falling": c["falling"],
               "anc_hours_from_fever": hours,
               "temperatures": [{"observation_id": x.oid, "value": x.v, "unit": "Cel",
                                 "collected_at": iso(x.t), "status": x.st} for x in temps],
               "observations": [obs(x) for x in (before, a) if x is not None]}


RENDER = {
    "grade_change": _grade, "severe_neutropenia": _onset, "agranulocytosis": _onset,
    "rapid_decline": _rapid, "recovery": _recovery, "chronic_neutropenia": _chronic,
    "cyclic_neutropenia_suspected": _cyclic, "post_ivig_neutropenia_pattern": _ivig,
    "ivig_baseline_missing": _baseline, "drug_associated_neutropenia_suspected": _drug,
    "febrile_neutropenia": _febrile, "expected_dip": _expected,
}
