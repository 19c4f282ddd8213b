"""Events dated in the future, before 1900 or before birth are refused; deletions never are (in the future)."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from clinical_events import T0, anc, ivig
from neutrowatch.domain.timing import implausible_time

HOUR = timedelta(hours=1)


def test_a_count_collected_within_the_tolerance_is_taken():
    now = T0 + timedelta(days=3)
    assert implausible_time(anc(3, 900), now, HOUR) is None
    assert implausible_time(anc(3 + 59 / 1440, 900), now, HOUR) is None  # a sender's clock 59 min fast


def test_a_count_from_a_mistyped_year_is_refused_with_a_reason_the_sender_can_act_on():
    rejection = implausible_time(anc(365 * 38, 900), T0 + timedelta(days=3), HOUR)
    assert rejection.code == "future_time" and rejection.field == "collected_at"
    assert "2061-12-22T08:00:00+00:00" in rejection.reason and "13867 days after it was received" in rejection.reason
    assert "at most 1 h" in rejection.reason and "time zone" in rejection.reason


def test_a_sender_hours_ahead_is_refused_in_hours():
    rejection = implausible_time(anc(0.4, 900), T0, HOUR)  # 9.6 h ahead: a zone offset taken as UTC
    assert "10 h after it was received" in rejection.reason


def test_an_infusion_starting_in_the_future_is_refused_on_its_start():
    rejection = implausible_time(ivig(30, 70), T0, HOUR)
    assert rejection.field == "started_at" and "administration start time" in rejection.reason


def test_a_deletion_dated_in_the_future_is_refused_too():
    """Taken in, it would blind the patient for good (nothing outranks a deletion). One of a
    result that was taken in is never so far ahead: that result was within the tolerance."""
    deleted = dataclasses.replace(anc(365 * 38, None), status="D")
    assert implausible_time(deleted, T0, HOUR).field == "collected_at"
    voided = dataclasses.replace(ivig(30, 70), status="entered-in-error")
    assert implausible_time(voided, T0, HOUR).field == "started_at"
    assert implausible_time(dataclasses.replace(anc(0, None), status="D"), T0 + timedelta(days=1), HOUR) is None


def test_a_report_time_in_the_future_is_refused():
    """It would outrank every later version of the result: the lab's next correction ignored."""
    count = dataclasses.replace(anc(0, 3000), status="C", reported_at=T0 + timedelta(days=365 * 38))
    rejection = implausible_time(count, T0 + timedelta(hours=2), HOUR)
    assert rejection.field == "reported_at" and "report time" in rejection.reason


def test_a_birth_date_in_the_future_is_refused():
    """It would grade an adult by a newborn's limits (a 1200 no longer mild)."""
    assert implausible_time(dataclasses.replace(anc(0, 1200), birth_date="2062-05-01"), T0, HOUR).field == "birth_date"
    assert implausible_time(dataclasses.replace(anc(0, 1200), birth_date=T0.date().isoformat()), T0, HOUR) is None


def test_a_time_before_1900_or_before_birth_is_refused():
    # OBR-7 18000101 for a patient born in 1968, FHIR effectiveDateTime 0001-01-01: stored before
    old = dataclasses.replace(anc(0, 900), collected_at=datetime(1800, 1, 1, tzinfo=timezone.utc))
    rejection = implausible_time(old, T0, HOUR)
    assert (rejection.code, rejection.field) == ("implausible_time", "collected_at")
    assert "before 1900" in rejection.reason
    unborn = dataclasses.replace(anc(0, 900), birth_date="2030-01-01")
    rejection = implausible_time(unborn, T0 + timedelta(days=3000), HOUR)
    assert (rejection.code, rejection.field) == ("implausible_time", "collected_at")
    assert "before the patient's birth date 2030-01-01" in rejection.reason
    born = dataclasses.replace(anc(0, 900), birth_date=T0.date().isoformat())
    assert implausible_time(born, T0, HOUR) is None  # collected on the day of birth
