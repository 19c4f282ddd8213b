"""Chronic neutropenia (neutropenia persisting more than ``chronic_days``, 90) is decided on a count
that is itself below the patient's normal limit: the neutropenia is still there three months on.

A normal count inside the episode (one normal value does not end an episode) shows no such thing:
it used to decide "Chronic neutropenia: ... without recovery" on the normal count (1200 on day 0,
2000 on day 95), a false alert. The alert shows the low count that decided it.

Everything goes through ``neutrowatch.detection.step``, one event at a time, and what is asserted
is what a clinician sees: the alerts' kind, time, count and text.
"""
from __future__ import annotations

from datetime import timedelta

import clinical_events
from clinical_events import SRC, T0, count
from neutrowatch.detection import DetectionConfig, PatientState, step
from neutrowatch.domain.events import LabResult


def anc(key: str, day: float, value: float) -> LabResult:
    return count(key, day, value, "p-chronic")


def series(points: list[tuple[float, float]], pid: str = "p-chronic") -> list[LabResult]:
    return clinical_events.series(points, pid)


def stream(events, config: DetectionConfig | None = None) -> list[list]:
    """The alerts each event produced, in order."""
    state, out = PatientState.empty(), []
    for ev in events:
        state, alerts = step(state, ev, config)
        out.append(alerts)
    return out


def sent(events, config: DetectionConfig | None = None) -> list:
    return [a for alerts in stream(events, config) for a in alerts]


def at(day: float) -> str:
    return (T0 + timedelta(days=day)).isoformat().replace("+00:00", "Z")


def chronic(alerts) -> list:
    return [a for a in alerts if a.kind == "chronic_neutropenia"]


def decided_on(alert) -> tuple[str, float]:
    """When and on which count a chronic alert was decided, as the alert shows it."""
    deciding = alert.evidence["observations"][-1]
    assert (deciding["collected_at"], deciding["value"]) == (alert.observed_at, alert.anc_cells_per_ul)
    return alert.observed_at, alert.anc_cells_per_ul


# --- the defect: a normal count three months on is not chronic neutropenia

def test_a_normal_count_three_months_after_a_mild_one_is_not_chronic_neutropenia():
    # failed before: "Chronic neutropenia: below 1500/uL for 95 days without recovery" on the 2000
    # (the single mild count, which the next count does not confirm, sends no grade change)
    alerts = sent(series([(0, 1200), (95, 2000)]))
    assert chronic(alerts) == []
    assert alerts == []
    # and a second normal count is the recovery, with no chronic alert sent or withdrawn on the way
    alerts = sent(series([(0, 1200), (95, 2000), (96, 2100)]))
    assert [(a.kind, a.observed_at) for a in alerts] == [("recovery", at(96))]


def test_neutropenia_still_there_after_three_months_is_chronic_on_that_low_count():
    alerts = sent(series([(0, 1200), (50, 1300), (95, 1100)]))
    [c] = chronic(alerts)
    assert decided_on(c) == (at(95), 1100)
    assert c.severity == "warning"
    assert c.summary == ("Chronic neutropenia: below 1500/uL for 95 days without recovery "
                         "(since 2024-01-01, nadir 1100/uL).")
    assert c.evidence["episode_start"]["value"] == 1200
    assert c.evidence["episode_start"]["collected_at"] == at(0)
    # not before three months: a low count on day 90 is not yet "more than 90 days"
    assert chronic(sent(series([(0, 1200), (50, 1300), (90, 1100)]))) == []


def test_a_normal_count_past_three_months_waits_for_the_next_low_count_in_the_same_episode():
    # the 2000 on day 95 is one normal value inside the episode (the last low count, day 85, is 12
    # days before the next, within episode_gap_days): the 1100 on day 97 decides it
    out = stream(series([(0, 1200), (45, 1250), (85, 1300), (95, 2000), (97, 1100)]))
    assert chronic(out[3]) == []  # failed before: decided on the 2000
    [c] = chronic(out[4])
    assert decided_on(c) == (at(97), 1100)
    assert c.evidence["duration_days"] == 97 and c.evidence["episode_start"]["collected_at"] == at(0)
    assert [a for alerts in out for a in alerts if a.kind == "alert_retracted"] == []


def test_a_low_count_after_a_normal_one_and_months_of_silence_is_a_new_episode_not_chronic():
    # 1200 on day 0, 2000 on day 95, 1100 on day 100: nothing below 1500 for 100 days before the
    # 1100, so the gap rule ended the first episode at the 2000; the 1100 opens a new episode
    # (a new mild neutropenia after a normal count), which is not chronic
    # (the 1150 of day 101 confirms the new mild grade; the 1200 of day 0 was not confirmed)
    alerts = sent(series([(0, 1200), (95, 2000), (100, 1100), (101, 1150)]))
    assert chronic(alerts) == []
    grades = [a for a in alerts if a.kind == "grade_change"]
    assert [(a.observed_at, a.evidence["from"], a.evidence["to"]) for a in grades] == [
        (at(100), "normal", "mild")]
    # ... and becomes chronic only if it is itself still there three months later
    alerts = sent(series([(0, 1200), (95, 2000), (100, 1100), (150, 1000), (191, 1050)]))
    [c] = chronic(alerts)
    assert decided_on(c) == (at(191), 1050)
    assert c.evidence["duration_days"] == 91 and c.evidence["episode_start"]["collected_at"] == at(100)


# --- a late (out of order) result

def test_a_late_low_count_from_past_three_months_decides_chronic_on_its_own_value():
    # 1200 on day 0, 1250 on day 45, then 2000 on day 95 (nothing chronic: failed before), then a
    # 1100 collected on day 93 arrives late: the neutropenia was there after 90 days, decided on it
    out = stream([anc("a", 0, 1200), anc("m", 45, 1250), anc("b", 95, 2000), anc("late", 93, 1100)])
    assert chronic(out[2]) == []
    [c] = chronic(out[3])
    assert decided_on(c) == (at(93), 1100)
    assert c.evidence["duration_days"] == 93
    assert [a.kind for a in out[3]] == ["chronic_neutropenia"]  # no retraction, no other page


def test_a_late_low_count_that_moves_the_start_earlier_makes_the_current_low_count_chronic():
    # 1200 on day 5, 1100 on day 95: 90 days, not yet chronic; a 1300 collected on day 0 arrives
    # late: the neutropenia has lasted 95 days, decided on the 1100 (not on the late count)
    out = stream([anc("a", 5, 1200), anc("m", 50, 1250), anc("b", 95, 1100), anc("late", 0, 1300)])
    assert chronic(out[2]) == []
    [c] = chronic(out[3])
    assert decided_on(c) == (at(95), 1100)
    assert c.evidence["duration_days"] == 95 and c.evidence["episode_start"]["value"] == 1300


def test_a_late_low_count_before_a_chronic_alert_already_sent_leaves_it_standing():
    # chronic sent on day 95; a 1300 collected on day -10 arrives late: the neutropenia began
    # earlier, which is no news about the patient: no retraction and no second chronic alert
    out = stream([anc("a", 0, 1200), anc("b", 50, 1300), anc("c", 95, 1100), anc("late", -10, 1300)])
    [c] = chronic(out[2])
    assert [a for a in out[3] if a.kind in ("chronic_neutropenia", "alert_retracted")
            and (a.kind == "chronic_neutropenia" or a.evidence["retracted_kind"] == "chronic_neutropenia")] == []
    # should the episode go (every count entered in error), the alert sent is withdrawn in its own name
    state = PatientState.empty()
    for ev in [anc("a", 0, 1200), anc("b", 50, 1300), anc("c", 95, 1100), anc("late", -10, 1300)]:
        state, _ = step(state, ev)
    withdrawn = []
    for oid, day in (("late", -10), ("a", 0), ("b", 50), ("c", 95)):
        state, alerts = step(state, LabResult(f"obs-p-chronic-{oid}", f"ev-x-{oid}", "p-chronic", None, "anc",
                                              None, "cells/uL", "X", T0 + timedelta(days=day), SRC))
        withdrawn += [a.evidence["retracted_alert_id"] for a in alerts if a.kind == "alert_retracted"]
    assert withdrawn.count(c.alert_id) == 1


def test_a_late_low_count_before_three_months_is_not_chronic():
    out = stream([anc("a", 0, 1200), anc("b", 95, 2000), anc("late", 80, 1100)])
    assert chronic([a for alerts in out for a in alerts]) == []


# --- per-patient normal limit (benign ethnic neutropenia)

def _own_limit(value: float) -> DetectionConfig:
    return DetectionConfig.from_mapping({"patients": {"p-chronic": {"normal_threshold": value}}})


def test_a_count_at_the_patients_own_normal_three_months_on_is_not_chronic():
    # normal limit 450 for this patient: 400 opens an episode, 480 three months later is this
    # patient's normal, not chronic neutropenia (failed before)
    assert chronic(sent(series([(0, 400), (95, 480)]), _own_limit(450))) == []
    # a stable count at the patient's own level never was an episode
    assert sent(series([(0, 480), (50, 470), (95, 460)]), _own_limit(450)) == []


def test_below_the_patients_own_limit_three_months_on_is_chronic_against_that_limit():
    [c] = chronic(sent(series([(0, 400), (50, 430), (95, 420)]), _own_limit(450)))
    assert decided_on(c) == (at(95), 420)
    assert "below 450/uL for 95 days" in c.summary
