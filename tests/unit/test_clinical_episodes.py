"""When an episode below a limit ends: the episode-gap rule (DetectionConfig.episode_gap_days).

An episode below a limit (neutropenia < normal, severe < 500, agranulocytosis < 100) ends when
two consecutive results are back at or above it, or when a result back at or above it is followed
by no result below it for more than ``episode_gap_days`` (14): one normal count and then months
without a count is a recovery, and a dangerous count after it is a new episode that must page
someone again (it used to be swallowed by the old episode, which then turned "chronic ... without
recovery"). Counts flapping around a limit day by day still never re-alert.

Everything goes through ``neutrowatch.detection.step``, one event at a time, and what is asserted
is what a clinician sees: the alerts' kind, severity, time, count and text.
"""
from __future__ import annotations

import json
from datetime import timedelta

import clinical_events
from clinical_events import SRC, T0
from neutrowatch.detection import DetectionConfig, PatientState, codec, step
from neutrowatch.domain.events import Coding, LabResult, MedicationAdministration

CONFIG = DetectionConfig()


def series(points: list[tuple[float, float]], pid: str = "p-gap") -> list[LabResult]:
    return clinical_events.series(points, pid)


def run(events, config: DetectionConfig = CONFIG, roundtrip: bool = False):
    """Step the events; every alert sent, in order, and the final state."""
    state, sent = PatientState.empty(), []
    for ev in events:
        if roundtrip:  # as the monitor keeps it: JSON between events
            state = codec.load(json.loads(json.dumps(codec.dump(state))))
        state, alerts = step(state, ev, config)
        sent += alerts
    return sent, state


def at(day: float) -> str:
    return (T0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")


def of_kind(alerts, kind: str):
    return [a for a in alerts if a.kind == kind]


def no_false_chronic_claim(alerts):
    assert not [a.summary for a in alerts if "without recovery" in a.summary]
    assert of_kind(alerts, "alert_retracted") == []


def test_severe_count_months_after_one_normal_count_is_a_new_severe_alert():
    # The auditor's case: 300, one normal 2500 ten days later, then 300 on day 200.
    alerts, _ = run(series([(0, 300), (10, 2500), (200, 300)]))
    severe = of_kind(alerts, "severe_neutropenia")
    assert [(a.observed_at, a.severity, a.anc_cells_per_ul) for a in severe] == [
        (at(0), "critical", 300), (at(200), "critical", 300)]
    assert severe[0].alert_id != severe[1].alert_id
    assert "new episode" in severe[1].summary
    assert severe[1].evidence["previous_grade"] == "normal"  # as after a confirmed recovery
    assert of_kind(alerts, "chronic_neutropenia") == []
    no_false_chronic_claim(alerts)


def test_a_year_later_the_new_severe_episode_alerts_too():
    alerts, _ = run(series([(0, 300), (10, 2500), (380, 250)]))
    assert [(a.kind, a.observed_at) for a in alerts] == [
        ("severe_neutropenia", at(0)), ("severe_neutropenia", at(380))]
    no_false_chronic_claim(alerts)


def test_agranulocytosis_months_after_one_higher_count_is_a_new_agranulocytosis_alert():
    # 50, one 600 two weeks later, then 50 six months later: a new agranulocytosis episode.
    alerts, _ = run(series([(0, 50), (14, 600), (180, 50)]))
    agran = of_kind(alerts, "agranulocytosis")
    assert [(a.observed_at, a.severity, a.anc_cells_per_ul) for a in agran] == [
        (at(0), "critical", 50), (at(180), "critical", 50)]
    assert "new episode" in agran[1].summary
    assert agran[1].evidence["previous_grade"] == "moderate"  # the 600
    assert of_kind(alerts, "alert_retracted") == []
    # (every count was below 1500, so the neutropenia itself did not end: a chronic neutropenia
    # alert is right here, and its "without recovery" is true)


def test_a_new_mild_episode_after_a_normal_count_and_months_alerts_as_a_grade_change():
    # each mild count confirmed by the next day's
    alerts, _ = run(series([(-5, 2000), (0, 1200), (1, 1250), (10, 2000), (300, 1200), (301, 1250)]))
    grades = of_kind(alerts, "grade_change")
    assert [(a.observed_at, a.severity, a.evidence["from"], a.evidence["to"]) for a in grades] == [
        (at(0), "warning", "normal", "mild"), (at(300), "warning", "normal", "mild")]
    assert of_kind(alerts, "chronic_neutropenia") == []
    no_false_chronic_claim(alerts)


def test_counts_flapping_around_500_are_one_episode_until_normal_or_months_of_silence():
    # never back to normal: the same severe neutropenia, even after weeks without a count (an
    # infant's autoimmune neutropenia counted monthly is not a page a month) ...
    flapping = [(d, 490 if d % 2 == 0 else 510) for d in range(20)]  # 490, 510, ..., 510 on day 19
    alerts, _ = run(series(flapping + [(40, 490)]))
    assert [a.observed_at for a in of_kind(alerts, "severe_neutropenia")] == [at(0)]
    # ... until a count back above 500 and more than chronic_days (90) without a severe count
    alerts, _ = run(series(flapping + [(40, 490), (60, 510), (160, 480)]))
    severe = of_kind(alerts, "severe_neutropenia")
    assert [a.observed_at for a in severe] == [at(0), at(160)]
    assert all(a.severity == "critical" for a in severe)
    assert of_kind(alerts, "recovery") == [] and of_kind(alerts, "alert_retracted") == []
    # a normal count in between: 14 days of silence are enough
    alerts, _ = run(series(flapping + [(20, 1800), (40, 490)]))
    assert [a.observed_at for a in of_kind(alerts, "severe_neutropenia")] == [at(0), at(40)]


def test_a_gap_of_at_most_14_days_is_not_a_new_episode_and_a_longer_one_is():
    def severe_times(points, pid):
        alerts, _ = run(series(points, pid))
        return [a.observed_at for a in of_kind(alerts, "severe_neutropenia")]

    # normal count the next day, then the next low count 13, 14 (not more than 14) or 16 days
    # after the last low one
    assert severe_times([(0, 300), (1, 2500), (13, 300)], "p-13") == [at(0)]
    assert severe_times([(0, 300), (1, 2500), (14, 300)], "p-14") == [at(0)]
    assert severe_times([(0, 300), (1, 2500), (16, 300)], "p-16") == [at(0), at(16)]
    # the setting is honoured
    longer = DetectionConfig.from_mapping({"episode_gap_days": 30})
    alerts, _ = run(series([(0, 300), (1, 2500), (20, 300)], "p-20"), longer)
    assert [a.observed_at for a in of_kind(alerts, "severe_neutropenia")] == [at(0)]
    alerts, _ = run(series([(0, 300), (1, 2500), (20, 300)], "p-20"))
    assert [a.observed_at for a in of_kind(alerts, "severe_neutropenia")] == [at(0), at(20)]


def test_chronic_neutropenia_counts_from_the_start_of_the_new_episode():
    alerts, _ = run(series([(0, 300), (10, 2500), (200, 300), (250, 400), (280, 450), (300, 300)]))
    assert [a.kind for a in alerts] == ["severe_neutropenia", "severe_neutropenia", "chronic_neutropenia"]
    [chronic] = of_kind(alerts, "chronic_neutropenia")
    assert chronic.observed_at == at(300) and chronic.evidence["duration_days"] == 100
    assert chronic.evidence["episode_start"]["collected_at"] == at(200)


def test_a_drug_given_before_the_new_episode_is_suspected_for_it():
    # The new episode is an episode like any other for the other rules: clozapine started five
    # days before a new neutropenia that follows a recovery (one normal count, months of silence).
    events = series([(0, 1200), (10, 2000), (150, 1100)])
    start = T0 + timedelta(days=145)
    clozapine = MedicationAdministration("adm-cloz-1", "ev-cloz-1", "p-gap", None, Coding("N05AH02"),
                                         "clozapine", start, "completed", SRC, start + timedelta(hours=1))
    alerts, _ = run(events[:2] + [clozapine] + events[2:])
    [drug] = of_kind(alerts, "drug_associated_neutropenia_suspected")
    assert drug.observed_at == at(150) and "5 days after the last clozapine dose" in drug.summary


def test_a_patient_mid_episode_keeps_its_state_through_json_and_the_history_bound():
    # The monitor keeps each state as JSON between events, and the history bound summarises the
    # dropped counts (the open episode, its last low count and its first count back above) in the
    # state's carry: with one count kept, every earlier count lives only in the carry.
    bounded = DetectionConfig.from_mapping({"history_max_anc": 1})
    events = series([(0, 300), (10, 2500), (200, 300), (201, 250)])
    in_memory, _ = run(events)
    for config in (CONFIG, bounded):
        through_json, state = run(events, config, roundtrip=True)
        assert [a.to_record() for a in through_json] == [a.to_record() for a in in_memory]
        assert codec.load(json.loads(json.dumps(codec.dump(state)))) == state
    assert [(a.kind, a.observed_at) for a in in_memory] == [
        ("severe_neutropenia", at(0)), ("severe_neutropenia", at(200))]

    # mid-episode (300, then the 2500), the bound has put the episode in the carry
    _, mid = run(events[:2], bounded, roundtrip=True)
    assert mid.carry and [o.v for o in mid.anc] == [2500]
    _, alerts = step(codec.load(json.loads(json.dumps(codec.dump(mid)))), events[2], bounded)
    assert [(a.kind, a.severity, a.observed_at) for a in alerts] == [
        ("severe_neutropenia", "critical", at(200))]

    # a state stored before the episodes recorded their last low count (version 1, 5 items per
    # episode: open, start, nadir, above, chronic) still loads, and the new episode still alerts
    old = json.loads(json.dumps(codec.dump(mid)))
    old["v"], old["c"] = 1, old["c"][:4] + [track[:4] + [0] for track in old["c"][4:7]]
    _, alerts = step(codec.load(old), events[2], bounded)
    assert [(a.kind, a.observed_at) for a in alerts] == [("severe_neutropenia", at(200))]
    no_false_chronic_claim(alerts)
