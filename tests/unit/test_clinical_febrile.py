"""Febrile neutropenia judged on the patient's count at the fever: the latest count before it (if
at most 72 h old) or one collected in the 24 h after it; "falling" against a count at most 7 days
older; the patient's own limits; the alert text tells what was measured, when."""
from __future__ import annotations

from datetime import timedelta

from clinical_events import reading
from neutrowatch.detection import DetectionConfig, run
from neutrowatch.domain.events import LabResult

def anc(hours: float, value: float) -> LabResult:
    return reading("anc", timedelta(hours=hours), value)


def temp(hours: float, celsius: float) -> LabResult:
    return reading("body_temperature", timedelta(hours=hours), celsius)


def febrile(events, config=None):
    return [a for a in run(events, config) if a.kind == "febrile_neutropenia"]


def test_a_normal_count_after_the_low_one_means_no_febrile_page():
    # 300 at 08:00, back to 2500 and 2600 since; the fever comes an hour after the 2600
    events = [anc(-72, 2000), anc(0, 300), anc(12, 2500), anc(22, 2600), temp(23, 39.0)]
    assert febrile(events) == []


def test_fever_a_day_and_a_half_after_agranulocytosis_with_no_count_since_pages():
    alerts = febrile([anc(-72, 2000), anc(0, 100), temp(36, 39.5)])
    assert len(alerts) == 1 and alerts[0].severity == "critical"
    assert "ANC 100/uL" in alerts[0].summary and "36 h before the fever" in alerts[0].summary


def test_a_count_older_than_the_lookback_does_not_count():
    assert febrile([anc(-72, 2000), anc(0, 300), temp(73, 39.5)]) == []


def test_the_cbc_drawn_for_the_fever_counts():
    alerts = febrile([anc(-72, 2000), temp(0, 39.0), anc(20, 300)])
    assert len(alerts) == 1 and "20 h after the fever" in alerts[0].summary


def test_falling_is_judged_against_a_recent_count_only():
    assert febrile([anc(-365 * 24, 1200), anc(0, 900), temp(1, 38.5)]) == []
    alerts = febrile([anc(-48, 1200), anc(0, 900), temp(1, 38.5)])
    assert len(alerts) == 1 and "falling from 1200/uL" in alerts[0].summary
    assert [o["value"] for o in alerts[0].evidence["observations"]] == [1200, 900]


def test_the_text_gives_the_configured_thresholds():
    config = DetectionConfig(febrile_single_c=38.0)
    alerts = febrile([anc(-72, 2000), anc(0, 300), temp(2, 38.1)], config)
    assert len(alerts) == 1 and "once >= 38 C" in alerts[0].summary
    assert alerts[0].evidence["temperature_single_c"] == 38.0


def test_the_patients_own_limit_decides_severe():
    # benign ethnic neutropenia: this patient's normal is 450; a stable 480 with fever is not FN
    config = DetectionConfig.from_mapping({"patients": {"p1": {"normal_threshold": 450}}})
    assert febrile([anc(-72, 470), anc(0, 480), temp(1, 38.5)], config) == []
    assert len(febrile([anc(-72, 470), anc(0, 300), temp(1, 38.5)], config)) == 1
