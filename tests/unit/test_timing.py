"""Events dated in the future are refused; deletions never are."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

from clinical_events import T0, anc, ivig
from neutrowatch.domain.timing import dated_ahead

HOUR = timedelta(hours=1)


def test_a_count_collected_within_the_tolerance_is_taken():
    now = T0 + timedelta(days=3)
    assert dated_ahead(anc(3, 900), now, HOUR) is None
    assert dated_ahead(anc(3 + 59 / 1440, 900), now, HOUR) is None  # a sender's clock 59 min fast


def test_a_count_from_a_mistyped_year_is_refused_with_a_reason_the_sender_can_act_on():
    rejection = dated_ahead(anc(365 * 38, 900), T0 + timedelta(days=3), HOUR)
    assert rejection.code == "future_time" and rejection.field == "collected_at"
    assert "2061-12-22T08:00:00+00:00" in rejection.reason and "13867 days after it was received" in rejection.reason
    assert "at most 1 h" in rejection.reason and "time zone" in rejection.reason


def test_a_sender_hours_ahead_is_refused_in_hours():
    rejection = dated_ahead(anc(0.4, 900), T0, HOUR)  # 9.6 h ahead: a zone offset taken as UTC
    assert "10 h after it was received" in rejection.reason


def test_an_infusion_starting_in_the_future_is_refused_on_its_start():
    rejection = dated_ahead(ivig(30, 70), T0, HOUR)
    assert rejection.field == "started_at" and "administration start time" in rejection.reason


def test_a_deletion_dated_in_the_future_is_refused_too():
    """Taken in, it would blind the patient for good (nothing outranks a deletion). One of a
    result that was taken in is never so far ahead: that result was within the tolerance."""
    deleted = dataclasses.replace(anc(365 * 38, None), status="D")
    assert dated_ahead(deleted, T0, HOUR).field == "collected_at"
    voided = dataclasses.replace(ivig(30, 70), status="entered-in-error")
    assert dated_ahead(voided, T0, HOUR).field == "started_at"
    assert dated_ahead(dataclasses.replace(anc(0, None), status="D"), T0 + timedelta(days=1), HOUR) is None


def test_a_report_time_in_the_future_is_refused():
    """It would outrank every later version of the result: the lab's next correction ignored."""
    count = dataclasses.replace(anc(0, 3000), status="C", reported_at=T0 + timedelta(days=365 * 38))
    rejection = dated_ahead(count, T0 + timedelta(hours=2), HOUR)
    assert rejection.field == "reported_at" and "report time" in rejection.reason


def test_a_birth_date_in_the_future_is_refused():
    """It would grade an adult by a newborn's limits (a 1200 no longer mild)."""
    assert dated_ahead(dataclasses.replace(anc(0, 1200), birth_date="2062-05-01"), T0, HOUR).field == "birth_date"
    assert dated_ahead(dataclasses.replace(anc(0, 1200), birth_date=T0.date().isoformat()), T0, HOUR) is None
