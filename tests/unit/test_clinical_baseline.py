"""Benign ethnic neutropenia: a per-patient override (baseline_anc or normal_threshold) lowers the
patient's severe limit with the normal limit (Limits.severe = min(severe_below, normal limit)), so
that the patient's own stable count pages nobody while a fall below it still does; an ANC < 100
(agranulocytosis) pages whoever the patient is; a patient without an override is unchanged."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from neutrowatch.detection import DetectionConfig, PatientState, step
from neutrowatch.domain.events import LabResult, Source

T0 = datetime(2024, 1, 1, 8, tzinfo=timezone.utc)
KEY = "A|P1"
_n = iter(range(10**6))


def anc(days: float, value: float, birth_date: str | None = None) -> LabResult:
    i = next(_n)
    return LabResult(f"anc-{i}", f"ev-anc-{i}", "P1", "A", "anc", value, "cells/uL", "F",
                     T0 + timedelta(days=days), Source("canonical"), birth_date=birth_date)


def temp(days: float, celsius: float) -> LabResult:
    i = next(_n)
    return LabResult(f"temp-{i}", f"ev-temp-{i}", "P1", "A", "body_temperature", celsius, "Cel", "F",
                     T0 + timedelta(days=days), Source("canonical"))


def weekly(values, start: float = 0.0, birth_date: str | None = None) -> list[LabResult]:
    return [anc(start + 7 * i, v, birth_date) for i, v in enumerate(values)]


def alerts_of(events, override: dict | None, **settings) -> list:
    """Every alert a clinician would receive, stepping the events in order."""
    mapping = dict(settings)
    if override is not None:
        mapping["patients"] = {KEY: override}
    config = DetectionConfig.from_mapping(mapping)
    state, out = PatientState.empty(), []
    for ev in events:
        state, alerts = step(state, ev, config)
        out.extend(alerts)
    return out


def critical(alerts) -> list[str]:
    return [a.kind for a in alerts if a.severity == "critical"]


def paged_at(alerts) -> list[float]:
    """The count each critical alert is about."""
    return [a.anc_cells_per_ul for a in alerts if a.severity == "critical"]


THRESHOLD_450 = {"normal_threshold": 450}
BASELINE_550 = {"baseline_anc": 550}  # normal limit 0.8 x 550 = 440


# --- the patient's own stable count pages nobody (failed before: CRITICAL "Severe neutropenia 480")

def test_threshold_override_stable_counts_below_500_page_nobody():
    assert alerts_of(weekly([480, 470, 490]), THRESHOLD_450) == []


def test_baseline_override_stable_counts_below_500_page_nobody():
    assert alerts_of(weekly([560, 480, 530]), BASELINE_550) == []


def test_a_long_stable_history_pages_nobody():
    # past the fold checkpoint (24 results) and past the history bound (rows dropped and folded
    # into the carry): neither reopens a severe episode at the patient's own level
    values = [480, 470, 490, 500, 475, 485, 495, 470] * 5
    assert critical(alerts_of(weekly(values), THRESHOLD_450)) == []
    assert critical(alerts_of(weekly(values), THRESHOLD_450, history_max_anc=10)) == []
    assert critical(alerts_of(weekly(values, birth_date="1985-06-01"), BASELINE_550)) == []


def test_the_stable_patient_falling_pages_once_after_a_long_history():
    values = [480, 470, 490, 500, 475, 485, 495, 470] * 4 + [200, 180, 190]
    for extra in ({}, {"history_max_anc": 10}):
        alerts = alerts_of(weekly(values), THRESHOLD_450, **extra)
        assert critical(alerts) == ["severe_neutropenia"], extra
        assert paged_at(alerts) == [200], extra


def test_the_severe_limit_in_force_is_in_the_evidence():
    [page] = alerts_of(weekly([480, 470, 200]), THRESHOLD_450)
    assert page.kind == "severe_neutropenia"
    assert page.evidence["thresholds"]["severe"] == 450
    assert page.evidence["thresholds"]["basis"] == "threshold_override"
    [page] = alerts_of(weekly([560, 480, 200]), BASELINE_550)
    assert page.evidence["thresholds"]["severe"] == 440
    # no override, or an override whose normal limit is above 500: the absolute 500
    [page] = alerts_of(weekly([2000, 480]), None)
    assert page.evidence["thresholds"]["severe"] == 500
    [page] = alerts_of(weekly([1000, 1050, 480]), {"baseline_anc": 1000})
    assert page.evidence["thresholds"]["severe"] == 500


# --- a fall below the patient's own level still pages

def test_threshold_override_fall_to_200_pages_severe():
    alerts = alerts_of(weekly([480, 470, 490, 200]), THRESHOLD_450)
    assert critical(alerts) == ["severe_neutropenia"] and paged_at(alerts) == [200]
    assert alerts[0].observed_at.startswith((T0 + timedelta(days=21)).date().isoformat())


def test_baseline_override_fall_to_200_pages_severe():
    alerts = alerts_of(weekly([560, 480, 530, 200]), BASELINE_550)
    assert critical(alerts) == ["severe_neutropenia"] and paged_at(alerts) == [200]


def test_a_fall_just_under_the_own_normal_limit_and_under_500_pages():
    # 430: below this patient's normal limit (440 = 0.8 x 550) and in the absolute severe range
    alerts = alerts_of(weekly([560, 530, 430]), BASELINE_550)
    assert critical(alerts) == ["severe_neutropenia"] and paged_at(alerts) == [430]


def test_agranulocytosis_pages_with_an_override():
    for override, stable in ((THRESHOLD_450, [480, 470, 490]), (BASELINE_550, [560, 480, 530])):
        alerts = alerts_of(weekly(stable + [80]), override)
        assert critical(alerts) == ["agranulocytosis"] and paged_at(alerts) == [80], override


def test_agranulocytosis_after_a_severe_fall_pages_again():
    alerts = alerts_of(weekly([480, 470, 300, 80]), THRESHOLD_450)
    assert critical(alerts) == ["severe_neutropenia", "agranulocytosis"]
    assert paged_at(alerts) == [300, 80]


# --- a patient without an override is unchanged

def test_no_override_480_pages_severe_as_before():
    alerts = alerts_of(weekly([2000, 480]), None)
    assert critical(alerts) == ["severe_neutropenia"] and paged_at(alerts) == [480]


def test_no_override_stable_480_pages_once():
    alerts = alerts_of(weekly([480, 470, 490]), None)
    assert critical(alerts) == ["severe_neutropenia"] and paged_at(alerts) == [480]


def test_an_override_for_another_patient_changes_nothing_here():
    alerts = alerts_of(weekly([480, 470, 490]), None, patients={"A|OTHER": THRESHOLD_450})
    assert critical(alerts) == ["severe_neutropenia"]


def test_an_override_above_500_keeps_the_absolute_severe_limit():
    # baseline 1000: normal limit 800; 480 is below 500, severe for this patient too
    alerts = alerts_of(weekly([1000, 1050, 480]), {"baseline_anc": 1000})
    assert critical(alerts) == ["severe_neutropenia"] and paged_at(alerts) == [480]


# --- febrile neutropenia uses the same per-patient limit

def test_fever_at_the_own_stable_level_is_not_febrile_neutropenia():
    events = weekly([480, 480, 490]) + [temp(14.5, 38.6)]
    assert alerts_of(events, THRESHOLD_450) == []


def test_fever_after_a_fall_is_febrile_neutropenia():
    events = weekly([480, 480, 200]) + [temp(14.5, 38.6)]
    kinds = critical(alerts_of(events, THRESHOLD_450))
    assert kinds == ["severe_neutropenia", "febrile_neutropenia"]


def test_the_page_names_the_patients_own_severe_limit():
    alerts = alerts_of(weekly([480, 470, 200]), {"normal_threshold": 450})
    severe = [a for a in alerts if a.kind == "severe_neutropenia"]
    assert len(severe) == 1 and "(< 450/uL)" in severe[0].summary
    assert severe[0].evidence["threshold_below"] == 450
