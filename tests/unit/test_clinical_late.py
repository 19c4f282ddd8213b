"""A late result that only moves an episode's start earlier (a severe count collected the day
before the one that paged) is the episode already paged for: no retraction, no second page; the
alert sent still stands and is withdrawn in its own name should the episode go."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from neutrowatch.detection import PatientState, step
from neutrowatch.domain.events import LabResult, Source

T0 = datetime(2024, 1, 1, 8, tzinfo=timezone.utc)


def anc(oid: str, day: float, value: float, status: str = "F") -> LabResult:
    return LabResult(oid, f"{oid}-{status}-{value}", "p1", None, "anc", value, "cells/uL", status,
                     T0 + timedelta(days=day), Source("canonical"))


def stream(events):
    state, out = PatientState.empty(), []
    for ev in events:
        state, alerts = step(state, ev)
        out.append(alerts)
    return state, out


def test_a_late_severe_count_from_the_day_before_does_not_page_again():
    _, out = stream([anc("a", 0, 2000), anc("b", 2, 300), anc("late", 1, 400)])
    paged = [a for a in out[1] if a.kind == "severe_neutropenia"]
    assert len(paged) == 1
    assert out[2] == []  # neither "no longer holds (late result)" nor a second critical


def test_the_alert_sent_is_withdrawn_in_its_own_name_when_the_episode_goes():
    _, out = stream([anc("a", 0, 2000), anc("b", 2, 300), anc("late", 1, 400),
                     anc("late", 1, 400, "D"), anc("b", 2, 2500, "C")])
    sent = next(a for a in out[1] if a.kind == "severe_neutropenia")
    retracted = [a for alerts in out[3:] for a in alerts if a.kind == "alert_retracted"]
    assert [r.evidence["retracted_alert_id"] for r in retracted] == [sent.alert_id]
    assert not [a for alerts in out[3:] for a in alerts if a.kind == "severe_neutropenia"]


def test_a_late_count_that_starts_a_separate_earlier_episode_still_pages():
    # weeks before, with normal counts in between: a different episode, news to the clinician
    _, out = stream([anc("a", 0, 2000), anc("n1", 10, 2100), anc("n2", 12, 2200),
                     anc("b", 30, 300), anc("late", 5, 400)])
    assert "severe_neutropenia" in [a.kind for a in out[4]]
    assert "alert_retracted" not in [a.kind for a in out[4]]
