"""IVIG doses recorded as a total mass (70 g of Privigen), as hospitals usually record them: the
dose is evidence (clinical-reference.md section 4), an escalation from 70 g to 90 g with no
baseline count is the care gap to flag, and a dose in g is never compared with one in g/kg."""
from __future__ import annotations

import json
from datetime import timedelta

from clinical_events import T0, anc, ivig, of_kind
from neutrowatch.detection import DetectionConfig, PatientState, codec, run, step
from neutrowatch.monitor.views import timeline


def test_escalation_from_70_g_to_90_g_without_a_recent_count_asks_for_a_cbc():
    # baseline count before the first course; none in the 30 days before the raised dose
    alerts = of_kind(run([anc(-1, 2100), ivig(0, 70), ivig(35, 90)]), "ivig_baseline_missing")
    assert len(alerts) == 1
    a = alerts[0]
    assert a.evidence["reasons"] == ["dose_raised"]
    assert "IVIG dose raised (90 g)" in a.summary and "obtain a CBC" in a.summary
    assert [x["dose_mg"] for x in a.evidence["administrations"]] == [90000]
    assert a.evidence["previous_course"]["dose_mg"] == 70000


def test_a_rise_in_grams_below_the_escalation_ratio_is_not_an_escalation():
    events = [anc(-1, 2100), ivig(0, 70), ivig(35, 72)]  # +2.9 %
    assert of_kind(run(events), "ivig_baseline_missing") == []
    # a hospital that counts a 2 % rise as an escalation is told
    strict = DetectionConfig(ivig_escalation_ratio=1.02)
    alerts = of_kind(run(events, strict), "ivig_baseline_missing")
    assert [a.evidence["reasons"] for a in alerts] == [["dose_raised"]]
    assert "(72 g)" in alerts[0].summary


def test_a_dose_in_g_is_not_compared_with_one_in_g_per_kg():
    # 1 g/kg, then 70 g (not "raised" from 1000 to 70000), then 90 g (raised from 70 g)
    events = [anc(-1, 2100), ivig(0, 1, "g/kg"), ivig(35, 70), ivig(70, 90)]
    alerts = of_kind(run(events), "ivig_baseline_missing")
    assert len(alerts) == 1 and alerts[0].evidence["reasons"] == ["dose_raised"]
    assert alerts[0].observed_at.startswith((T0 + timedelta(days=70)).date().isoformat())
    assert alerts[0].evidence["previous_course"] == {
        "started_at": (T0 + timedelta(days=35, hours=2)).isoformat().replace("+00:00", "Z"),
        "dose_mg_per_kg": None, "dose_mg": 70000}


def test_gram_doses_are_part_of_the_post_ivig_pattern():
    events = []
    for k, grams in enumerate((70, 80)):  # the pattern is decided at the second dip
        d = 21 * k
        events += [anc(d - 0.1, 1100), ivig(d, grams), anc(d + 1, 400), anc(d + 8, 300), anc(d + 15, 900)]
    alerts = of_kind(run(events), "post_ivig_neutropenia_pattern")
    assert len(alerts) == 1
    a = alerts[0]
    assert ", dose 70 g/80 g;" in a.summary
    assert a.evidence["doses_mg"] == [70000, 80000]
    cycles = a.evidence["cycles"]
    assert [c["dose_mg"] for c in cycles] == [70000, 80000]
    assert cycles[0]["infusion"][0]["dose_mg"] == 70000


def test_the_patient_timeline_shows_doses_given_in_grams():
    config = DetectionConfig()
    state = PatientState.empty()
    for ev in [anc(-0.1, 1100), ivig(0, 35), ivig(1, 35), anc(2, 400)]:  # 70 g over two days
        state, _ = step(state, ev, config)
    body = timeline(state, {}, config)
    assert [(a["dose_mg"], a["dose_mg_per_kg"]) for a in body["administrations"]] == [(35000, None)] * 2
    assert [(c["dose_mg"], c["dose_mg_per_kg"]) for c in body["ivig_courses"]] == [(70000, None)]
    assert [i["dose_mg"] for i in body["anc"][-1]["linked_infusions"]] == [35000, 35000]


def test_a_mass_dose_summarised_by_the_history_bound_still_counts_after_a_reload():
    # the bound keeps one administration: the 70 g course leaves the history before the 90 g one
    config = DetectionConfig(history_max_administrations=1)
    state, out = PatientState.empty(), []
    for ev in [anc(-1, 2100), ivig(0, 70), ivig(35, 90)]:
        state = codec.load(json.loads(json.dumps(codec.dump(state))))
        state, alerts = step(state, ev, config)
        out += alerts
    assert state.ivig_prior[-1][1:] == (None, 70000.0)
    alerts = of_kind(out, "ivig_baseline_missing")
    assert [a.evidence["reasons"] for a in alerts] == [["dose_raised"]]
    assert alerts[0].evidence["previous_course"]["dose_mg"] == 70000


def test_a_state_stored_before_mass_doses_were_kept_still_loads():
    t = int(T0.timestamp())
    old = {"v": 1, "pk": "p1", "pid": "p1",
           "a": {"t": [t - 86400], "v": [2100], "o": ["anc-old"], "s": "F"},
           "m": {"t": [t], "e": [14400], "c": ["ivig"], "d": [1000], "o": ["adm-old"], "s": "c"},
           "ip": [[t - 21 * 86400, 1000.0]], "h": t - 21 * 86400}
    state = codec.load(old)
    assert state.adms[0].mgkg == 1000.0 and state.adms[0].mg is None
    assert state.ivig_prior == ((t - 21 * 86400, 1000.0, None),)
    assert codec.dump(state) == {**old, "v": codec.VERSION}  # nothing added while no dose is a mass
    # the patient moves to doses in g: 70 g, then 90 g with no count in the 30 days before
    out = []
    for ev in [ivig(35, 70), ivig(70, 90)]:
        state, alerts = step(state, ev)
        out += alerts
    assert [(a.observed_at[:10], a.evidence["reasons"]) for a in of_kind(out, "ivig_baseline_missing")] == [
        ((T0 + timedelta(days=70)).date().isoformat(), ["dose_raised"])]
    assert "g" in codec.dump(state)["m"]
    assert codec.load(json.loads(json.dumps(codec.dump(state)))) == state
