"""The paging policy: one page per episode, expected dips recorded not paged, chronic across an
infection rise, and what one result is.

Each test failed on the engine before the policy (issue 14): the IVIG case paged critical five
times, three after the pattern had explained the dips; it was never called chronic; counts
flapping around 100 paged "new episode" again and again; a recollection after a cancelled (X)
result of the same order paged no one. Everything goes through ``detection.step`` one event at a
time, and what is asserted is what on call receives: kind, severity, time and text.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from clinical_events import T0, count, series
from neutrowatch.detection import DetectionConfig, PatientState, active_alerts, step
from tests import scenario_builder

CRITICAL = "critical"


def sent(events, config: DetectionConfig | None = None):
    state = PatientState.empty()
    out = []
    for ev in events:
        state, alerts = step(state, ev, config)
        out += alerts
    return out, state


def pages(alerts) -> list[tuple[str, str]]:
    return [(a.kind, a.observed_at[:10]) for a in alerts if a.severity == CRITICAL]


def kinds(alerts, kind):
    return [a for a in alerts if a.kind == kind]


def ivig_case_plus(cycle: tuple[float, float, float, float, float],
                   fever_day: float | None = None) -> scenario_builder.Patient:
    """The IVIG case report's six cycles and a seventh: (pre, day 1, day 4, day 8, day 15), with a
    fever of 38.6 C on ``fever_day`` after its infusion; everything sent in collection order."""
    p = scenario_builder.ivig_case()
    pre, *after = cycle
    d0 = 21 * 6
    p.anc(d0 - 0.04, pre)
    p.give(d0, "ivig", 1000)
    for day, v in zip((1, 4, 8, 15), after):
        p.anc(d0 + day, v)
        if fever_day is not None and day < fever_day < day + 3:
            p.temp(d0 + fever_day, 38.6)
    return p


# ---------------------------------------------------------------------------- the IVIG case

def test_the_ivig_case_pages_twice_and_records_the_later_dips_as_expected():
    alerts, state = sent(scenario_builder.ivig_case().events)
    # the first dip (nothing explains it yet) and the one that establishes the pattern
    assert pages(alerts) == [("severe_neutropenia", "2024-01-02"), ("severe_neutropenia", "2024-01-23")]
    dips = kinds(alerts, "expected_dip")
    assert [(d.severity, d.observed_at[:10]) for d in dips] == [
        ("info", "2024-03-05"), ("info", "2024-03-26"), ("info", "2024-04-16")]
    assert dips[1].summary.startswith("Expected post-IVIG dip: ANC 400/uL 1 day after the IVIG infusion "
                                      "of 2024-03-25 (1000 mg/kg)")
    assert dips[1].evidence["usual_nadir"] == 300
    # the pattern's per-cycle evidence (the patient page, GET /patients/{key}/state) says which
    [pattern] = kinds(active_alerts(state), "post_ivig_neutropenia_pattern")
    assert [c["expected"] for c in pattern.evidence["cycles"]] == [False, False, False, True, True, True]
    assert not kinds(alerts, "rapid_decline")  # the fall after the 4th infusion is the expected dip's


def test_the_ivig_case_is_chronic_across_the_infection_rise():
    alerts, _ = sent(scenario_builder.ivig_case().events)
    [chronic] = kinds(alerts, "chronic_neutropenia")
    assert chronic.observed_at[:10] == "2024-04-02" and chronic.evidence["duration_days"] == 92
    rise = chronic.evidence["transient_rise"]
    assert rise["peak"]["value"] == 2400 and rise["from"][:10] == "2024-02-12"
    assert "a transient rise to 2400/uL (2024-02-12, 15 days" in chronic.summary


def test_a_rise_longer_than_the_setting_ends_the_chronic_clock():
    config = DetectionConfig.from_mapping({"chronic_rise_max_days": 10})
    alerts, _ = sent(scenario_builder.ivig_case().events, config)
    assert kinds(alerts, "chronic_neutropenia") == []  # the 15-day rise ended it


def test_a_dip_deeper_than_usual_pages_saying_so():
    alerts, _ = sent(ivig_case_plus((1100, 400, 150, 300, 900)).events)
    new = [p for p in pages(alerts) if p[1] >= "2024-05-06"]
    assert new == [("severe_neutropenia", "2024-05-10")]
    [deeper] = [a for a in alerts if a.severity == CRITICAL and a.observed_at.startswith("2024-05-10")]
    assert "deeper than this patient's usual post-IVIG dip (deepest so far 300/uL), 4 days after the " \
           "IVIG infusion of 2024-05-06" in deeper.summary
    assert deeper.evidence["post_ivig_deviation"]["how"] == "deeper"
    assert [a.observed_at[:10] for a in kinds(alerts, "expected_dip")][-1] == "2024-05-07"  # the 400 before it


def test_agranulocytosis_inside_an_expected_dip_pages():
    alerts, _ = sent(ivig_case_plus((1100, 400, 80, 300, 900)).events)
    assert ("agranulocytosis", "2024-05-10") in pages(alerts)


def test_a_dip_not_recovered_two_weeks_after_the_infusion_pages():
    alerts, _ = sent(ivig_case_plus((1100, 400, 350, 300, 420)).events)
    [late] = [a for a in alerts if a.severity == CRITICAL and a.observed_at >= "2024-05-06"]
    assert late.observed_at[:10] == "2024-05-21"
    assert "not recovered from the post-IVIG dip 15 days after the IVIG infusion of 2024-05-06" in late.summary


def test_a_fever_during_an_expected_dip_pages():
    alerts, _ = sent(ivig_case_plus((1100, 400, 350, 300, 900), fever_day=1.2).events)
    assert ("febrile_neutropenia", "2024-05-07") in pages(alerts)


def test_expected_dip_handling_can_be_turned_off_globally_and_per_patient():
    events = scenario_builder.ivig_case().events
    off = DetectionConfig.from_mapping({"expected_dips": False})
    per_patient = DetectionConfig.from_mapping({"patients": {"SCEN|ivig-case": {"expected_dips": False}}})
    for config in (off, per_patient):
        alerts, _ = sent(events, config)
        assert len(pages(alerts)) == 5 and kinds(alerts, "expected_dip") == []


def test_a_cyclic_trough_that_arrives_when_the_period_predicts_is_recorded_not_paged():
    alerts, _ = sent(scenario_builder.cyclic_dense().events)
    assert pages(alerts) == [("severe_neutropenia", "2024-01-15"), ("severe_neutropenia", "2024-02-05")]
    [trough] = kinds(alerts, "expected_dip")
    assert trough.summary.startswith("Expected cyclic trough: ANC 640/uL, when the ~21-day cycle predicts "
                                     "one (2024-02-26), no deeper than its usual nadir 190/uL")


def test_a_cyclic_trough_much_deeper_than_the_cycle_pages():
    p = scenario_builder.cyclic_dense()
    p.events = [e if e.observation_id != "cyclic-dense-o025" else replace(e, value=60.0) for e in p.events]
    alerts, _ = sent(p.events)
    assert ("agranulocytosis", "2024-02-26") in pages(alerts)


# ---------------------------------------------------------------------------- one page per episode

def test_counts_flapping_around_100_page_once_for_the_episode_and_once_for_agranulocytosis():
    # a real patient below 500 for three weeks was paged four times: severe, then "new episode"
    # agranulocytosis three times as two counts >= 100 ended it and the next 80 began another
    points = [(0, 2000), (1, 300), (4, 90), (7, 110), (10, 220), (13, 80), (16, 180), (19, 80), (20, 10), (21, 0)]
    alerts, _ = sent(series(points, "p-flap"))
    assert pages(alerts) == [("severe_neutropenia", "2024-01-02"), ("agranulocytosis", "2024-01-05")]
    assert kinds(alerts, "rapid_decline") == []  # 10 -> 0 inside a known agranulocytosis adds nothing
    assert [a.evidence["to"] for a in kinds(alerts, "grade_change")] == []


def test_a_new_severe_episode_after_a_confirmed_recovery_still_pages():
    points = [(0, 300), (1, 90), (5, 900), (6, 1000), (20, 400), (21, 80)]
    alerts, _ = sent(series(points, "p-again"))
    assert pages(alerts) == [("severe_neutropenia", "2024-01-01"), ("agranulocytosis", "2024-01-02"),
                             ("severe_neutropenia", "2024-01-21"), ("agranulocytosis", "2024-01-22")]


def test_a_fall_from_one_severe_count_to_another_is_no_rapid_decline():
    alerts, _ = sent(series([(0, 1600), (10, 450), (11, 200)], "p-fall"))
    assert kinds(alerts, "rapid_decline") == []
    assert pages(alerts) == [("severe_neutropenia", "2024-01-11")]


# ---------------------------------------------------------------------------- what is evidence

def test_chronic_needs_counts_that_span_the_period():
    # 1200/uL in January 2023 and 300/uL in June 2025, nothing between: not "873 days without recovery"
    alerts, _ = sent(series([(-365, 1200), (508, 300)], "p-years"))
    assert kinds(alerts, "chronic_neutropenia") == []
    assert pages(alerts) == [("severe_neutropenia", "2025-05-23")]


def test_a_single_mild_count_waits_for_the_next_to_confirm_it():
    alerts, _ = sent(series([(0, 1600), (10, 1200)], "p-mild"))
    assert kinds(alerts, "grade_change") == []
    alerts, _ = sent(series([(0, 1600), (10, 1200), (11, 1250)], "p-mild"))
    [change] = kinds(alerts, "grade_change")
    assert (change.observed_at[:10], change.evidence["to"], change.severity) == ("2024-01-11", "mild", "warning")
    # counts years apart confirm nothing
    alerts, _ = sent(series([(-3000, 1600), (-2990, 1200), (0, 1250)], "p-mild"))
    assert kinds(alerts, "grade_change") == []


def test_an_improvement_quotes_the_counts_that_confirmed_it():
    alerts, _ = sent(series([(0, 1600), (1, 400), (2, 800), (3, 1100)], "p-up"))
    [up] = [a for a in kinds(alerts, "grade_change") if a.evidence["from"] == "severe"]
    assert up.summary == ("ANC 800, 1100/uL: grade improved severe -> moderate "
                          "(confirmed by 2 results at moderate or better).")


def test_a_recollection_after_a_cancelled_result_of_the_same_order_pages():
    from clinical_events import SRC
    from neutrowatch.domain.events import LabResult
    cancelled = LabResult("ord-77", "ord-77-X", "p-recoll", None, "anc", None, "cells/uL", "X",
                          T0, SRC)
    recollected = LabResult("ord-77", "ord-77-F", "p-recoll", None, "anc", 300.0, "cells/uL", "F",
                            T0 + timedelta(hours=5), SRC)
    for order in ([cancelled, recollected], [recollected, cancelled]):
        alerts, _ = sent([count("before", -3, 2000, "p-recoll"), *order])
        assert pages(alerts) == [("severe_neutropenia", "2024-01-01")], order
