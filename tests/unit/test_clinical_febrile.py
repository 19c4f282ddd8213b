"""Febrile neutropenia judged on the patient's count at the fever: the latest count before it (if
at most 72 h old) or one collected in the 24 h after it; "falling" against a count at most 7 days
older; the patient's own limits; the alert text tells what was measured, when."""
from __future__ import annotations

from datetime import timedelta

from clinical_events import SRC, T0, reading
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


# Sustained fever: readings >= 38.0 C that cover the hour, not two readings far apart.

def test_two_readings_of_38_1_two_days_apart_are_not_a_sustained_fever():
    # Each reading alone is below 38.3; nothing was measured in the two days between them.
    assert febrile([anc(-72, 3000), anc(0, 400), temp(1, 38.1), temp(49, 38.1)]) == []


def test_readings_more_than_two_hours_apart_do_not_sustain_a_fever():
    assert febrile([anc(-72, 3000), anc(0, 400), temp(1, 38.1), temp(3.5, 38.1)]) == []
    # half an hour, three hours of silence, 54 minutes: no hour covered
    assert febrile([anc(-72, 3000), anc(0, 400), temp(1, 38.1), temp(1.5, 38.2), temp(4.5, 38.1),
                    temp(5.4, 38.0)]) == []


def test_readings_every_30_or_60_minutes_over_an_hour_are_a_sustained_fever():
    for every in (0.5, 1.0):
        hours = [1 + k * every for k in range(int(1 / every) + 1)]  # over an hour, first to last
        alerts = febrile([anc(-72, 3000), anc(0, 400)] + [temp(h, 38.1) for h in hours])
        assert len(alerts) == 1, every
        assert "sustained >= 38 C for 60 min" in alerts[0].summary


def test_hourly_readings_charted_a_little_late_are_still_sustained():
    alerts = febrile([anc(-72, 3000), anc(0, 400), temp(1, 38.1), temp(2.1, 38.2)])
    assert len(alerts) == 1


def test_a_run_broken_by_a_long_silence_is_measured_from_where_it_resumes():
    # 38.1 at 1 h, nothing for 5 h, then 38.1 every 30 min: sustained once the new run spans an hour
    events = [anc(-72, 3000), anc(0, 400), temp(1, 38.1), temp(6, 38.1), temp(6.5, 38.2)]
    assert febrile(events) == []
    alerts = febrile(events + [temp(7, 38.1)])
    assert len(alerts) == 1
    began, fever = alerts[0].evidence["temperatures"]
    assert (began["collected_at"], fever["collected_at"]) == ("2024-01-01T14:00:00Z", "2024-01-01T15:00:00Z")


def test_the_longest_silence_within_a_run_is_a_setting():
    events = [anc(-72, 3000), anc(0, 400), temp(1, 38.1), temp(3.5, 38.1)]
    config = DetectionConfig.from_mapping({"febrile_sustained_max_gap_minutes": 180})
    assert len(febrile(events, config)) == 1
    config = DetectionConfig.from_mapping({"febrile_sustained_max_gap_minutes": 45})
    assert febrile([anc(-72, 3000), anc(0, 400), temp(1, 38.1), temp(2, 38.1)], config) == []


# Several counts collected at the same time (preliminary and final under two ids, a direct and a
# derived count of one specimen): the observation ids that order them must not decide.

def count(hours: float, value: float, oid: str, status: str = "F", provenance: str = "direct") -> LabResult:
    return LabResult(oid, f"ev-{oid}-{status}", "p1", None, "anc", value, "cells/uL", status,
                     T0 + timedelta(hours=hours), SRC, provenance=provenance)


def test_a_stale_preliminary_next_to_the_final_does_not_hide_the_febrile_count():
    # already paged for severe neutropenia; next day's final 250 has a never-finalised preliminary
    # 2000 of another id at the same collection time; a fever 3 h later is febrile neutropenia
    base = [anc(-48, 3000), anc(-24, 300)]
    for stale in ("obs-z", "obs-0"):  # sorting after or before the final
        alerts = febrile(base + [count(0, 250, "obs-a"), count(0, 2000, stale, status="P"), temp(3, 39.0)])
        assert len(alerts) == 1, stale
        assert alerts[0].anc_cells_per_ul == 250


def test_of_a_direct_and_a_derived_count_of_one_specimen_the_lowest_decides():
    events = [anc(-48, 3000), count(0, 300, "a-direct"), count(0, 2100, "z-derived", provenance="derived"),
              temp(3, 39.0)]
    alerts = febrile(events)
    assert len(alerts) == 1 and alerts[0].anc_cells_per_ul == 300


def test_a_count_at_the_same_time_is_no_fall():
    # 900 is < 1000 but not < 500: febrile only when falling. A 2000 of the same collection time
    # is the same moment, not an earlier count it fell from.
    for other in ("a-other", "z-other"):
        events = [anc(-24 * 30, 900), count(0, 2000, other), count(0, 900, "m-count"), temp(3, 38.5)]
        assert febrile(events) == [], other
    alerts = febrile([anc(-48, 2000), count(0, 900, "m-count"), temp(3, 38.5)])
    assert len(alerts) == 1 and "falling from 2000/uL" in alerts[0].summary


def test_a_fall_from_any_of_several_counts_of_the_earlier_time_counts():
    events = [count(-48, 800, "a-prev", status="P"), count(-48, 1200, "z-prev"), anc(0, 900), temp(3, 38.5)]
    events2 = [count(-48, 1200, "a-prev"), count(-48, 800, "z-prev", status="P"), anc(0, 900), temp(3, 38.5)]
    for evs in (events, events2):
        alerts = febrile(evs)
        assert len(alerts) == 1 and "falling from 1200/uL" in alerts[0].summary
