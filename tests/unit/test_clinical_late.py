"""A late result that only moves an episode's start earlier (a severe count collected the day
before the one that paged) is the episode already paged for: no retraction, no second page; the
alert sent still stands and is withdrawn in its own name should the episode go. So too a grade
change whose transition a late result only dates differently; one that changes the transition
is withdrawn and the new one sent."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from neutrowatch.detection import PatientState, codec, step
from neutrowatch.domain.events import LabResult, Source

T0 = datetime(2024, 1, 1, 8, tzinfo=timezone.utc)


def anc(oid: str, day: float, value: float | None, status: str = "F") -> LabResult:
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


# ---------------------------------------------------------------------- grade changes
# A grade change is about the transition (from -> to): a late count that only dates the same
# transition earlier (or later) is the change the clinician was already told about; one that
# changes the transition itself is news, and the old alert is withdrawn.

def sent(out):
    """(kind, from, to) of every alert a clinician received, in order; a retraction as
    ("alert_retracted", the id it withdraws)."""
    return [("alert_retracted", a.retracts_alert_id) if a.kind == "alert_retracted" else
            (a.kind, a.evidence.get("from"), a.evidence.get("to")) for alerts in out for a in alerts]


NORMAL_TO_MODERATE = [anc("a", 0, 1700), anc("b", 1, 1600), anc("c", 5, 900), anc("d", 6, 950)]


def test_in_order_counts_send_one_grade_change():
    _, out = stream(NORMAL_TO_MODERATE)
    assert sent(out) == [("grade_change", "normal", "moderate")]
    # decided on the 900 of day 5, sent when the 950 of day 6 confirmed it
    assert out[2] == [] and out[3][0].observed_at.startswith("2024-01-06")


def test_a_late_count_that_dates_the_same_transition_earlier_sends_nothing():
    state, out = stream(NORMAL_TO_MODERATE + [anc("late", 3, 900)])
    assert out[4] == []  # no "no longer holds (late result)", no second normal -> moderate
    assert sent(out) == [("grade_change", "normal", "moderate")]
    # the alert sent stands, under the id the history now gives it (as any arrival order would)
    assert [e.kind for e in state.ledger.entries.values()].count("grade_change") == 1


def test_a_late_count_that_dates_an_improvement_later_sends_nothing():
    # moderate, then 1200 and 1300 (improved to mild); a late 800 between them means the two
    # better counts in a row came a day later: the same improvement, dated later
    events = [anc("a", 0, 1600), anc("b", 2, 900), anc("c", 3, 850), anc("d", 5, 1200),
              anc("e", 6, 1300), anc("f", 7, 1250)]
    _, out = stream(events + [anc("late", 5.5, 800)])
    assert sent(out) == [("grade_change", "normal", "moderate"), ("grade_change", "moderate", "mild")]
    assert out[-1] == []


def test_a_late_count_that_changes_the_transition_withdraws_and_sends():
    # normal -> mild was sent; a late 900 makes it normal -> moderate (on one count, which the
    # next, mild, does not confirm: not sent), then an improvement to mild (two counts)
    _, out = stream([anc("a", 0, 1700), anc("b", 1, 1600), anc("c", 5, 1200), anc("d", 6, 1300),
                     anc("late", 3, 900)])
    first = out[3][0]
    assert sent(out[:4]) == [("grade_change", "normal", "mild")]
    assert sent(out[4:]) == [("alert_retracted", first.alert_id), ("grade_change", "moderate", "mild")]


def test_a_late_severe_count_withdraws_the_moderate_change_and_pages():
    # mild -> moderate was sent; a late 400 before it makes the fall mild -> severe
    _, out = stream([anc("a", 0, 1200), anc("b", 5, 700), anc("c", 6, 800), anc("late", 4, 400)])
    moderate = next(a for a in out[2] if a.kind == "grade_change" and a.evidence["to"] == "moderate")
    kinds = [a.kind for a in out[3]]
    # (the first count's mild, now followed by a severe count whose page says more, goes too)
    assert moderate.alert_id in [a.retracts_alert_id for a in out[3] if a.kind == "alert_retracted"]
    assert "severe_neutropenia" in kinds
    assert next(a for a in out[3] if a.kind == "severe_neutropenia").evidence["previous_grade"] == "mild"


def test_the_grade_change_sent_is_withdrawn_in_its_own_name():
    _, out = stream(NORMAL_TO_MODERATE + [anc("late", 3, 900), anc("c", 5, None, "D"),
                                          anc("d", 6, None, "D"), anc("late", 3, 2500, "C")])
    first = out[3][0]
    assert out[4] == []  # the transition still stands on the late count ...
    # ... until the counts after it, which confirmed it, are deleted: withdrawn in its own name, once
    assert sent(out[5:]) == [("alert_retracted", first.alert_id)]


def test_the_grade_change_is_back_under_its_own_id_when_the_late_count_goes():
    state, out = stream(NORMAL_TO_MODERATE + [anc("late", 3, 900), anc("late", 3, None, "D")])
    first = out[3][0]
    assert out[4:] == [[], []]
    assert state.ledger.entries[first.alert_id].kind == "grade_change"


def test_arrival_order_does_not_change_the_alerts_that_stand():
    in_order = NORMAL_TO_MODERATE[:2] + [anc("late", 3, 900)] + NORMAL_TO_MODERATE[2:]
    a, _ = stream(in_order)
    b, _ = stream(NORMAL_TO_MODERATE + [anc("late", 3, 900)])
    assert {k: (e.kind, e.t) for k, e in a.ledger.entries.items()} == {k: (e.kind, e.t) for k, e in b.ledger.entries.items()}


def test_a_state_stored_before_grade_changes_kept_their_grades_still_loads():
    # such a state does not know which transition it announced: it withdraws and sends as before
    state, _ = stream(NORMAL_TO_MODERATE)
    d = json.loads(json.dumps(codec.dump(state)))
    d["e"] = [e[:3] for e in d["e"]]  # [id, kind, t]: the entries as older versions stored them
    old = codec.load(d)
    again, alerts = step(old, anc("late", 3, 900))
    assert [a.kind for a in alerts] == ["alert_retracted", "grade_change"]
    assert codec.load(json.loads(json.dumps(codec.dump(again)))) == again
