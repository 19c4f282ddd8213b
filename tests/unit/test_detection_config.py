"""Detection settings are validated as they are loaded: a wrong type, a figure in the wrong unit,
an out-of-range or out-of-order value stops the process at start with a message naming the
setting, instead of making every event fail (a quoted "500") or silently disabling alerts (1.5
for 1500 cells/uL)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from neutrowatch import analyze
from neutrowatch.detection import DetectionConfig, run

from clinical_events import anc, reading
from datetime import timedelta

DEMO = Path(__file__).resolve().parents[2] / "services" / "neutrowatch" / "demo" / "data" / "detection.yaml"


def refused(mapping) -> str:
    with pytest.raises(ValueError) as info:  # what the commands catch to print the message
        DetectionConfig.from_mapping(mapping)
    return str(info.value)


def test_an_invalid_setting_is_a_detection_config_error():
    from neutrowatch.detection.config import DetectionConfigError
    with pytest.raises(DetectionConfigError):
        DetectionConfig.from_mapping({"severe_below": "500"})
    assert issubclass(DetectionConfigError, ValueError)


def test_the_defaults_and_the_demo_settings_are_valid():
    assert DetectionConfig().validate() == DetectionConfig()
    assert DetectionConfig.from_mapping({}) == DetectionConfig()
    demo = analyze.load_config(DEMO)
    assert demo.patients["DEMOHOSP|BEN-04"].baseline_anc == 1000


def test_sensible_settings_are_accepted():
    config = DetectionConfig.from_mapping({
        "profile": "local", "severe_below": 500, "confirmations": 3, "chronic_days": 60,
        "febrile_single_c": 38.5, "febrile_sustained_c": 38.0, "ivig_early_hours": [18, 54],
        "profiles": {"local": {"normal": 1600, "mild": 1000, "moderate": 500, "agranulocytosis": 100,
                               "age_bands": [{"max_age_days": 365, "normal": 1000}]}},
        "watch_list": ["clozapine", {"drug_class": "rituximab", "windows_days": [[0, 7], [21, 180]]}],
        "patients": {"p1": {"baseline_anc": 1000}, "p2": {"normal_threshold": 450, "profile": "eu"}},
    })
    assert config.profile_for("p2").name == "eu" and config.watch_list[1].windows_days[1] == (21.0, 180.0)


def test_a_number_written_as_text_is_refused_naming_the_setting():
    message = refused({"severe_below": "500"})
    assert "'severe_below'" in message and "'500'" in message and "without quotes" in message
    assert "'confirmations'" in refused({"confirmations": "2"})
    assert "'patients.p1.normal_threshold'" in refused({"patients": {"p1": {"normal_threshold": "450"}}})
    assert "'profiles.us.normal'" in refused({"profiles": {"us": {"normal": "1500"}}})


@pytest.mark.parametrize("value", [True, None, [500], {"v": 500}, math.nan, math.inf])
def test_a_value_that_is_not_a_finite_number_is_refused(value):
    assert "'severe_below'" in refused({"severe_below": value})


@pytest.mark.parametrize("mapping, where", [
    ({"severe_below": 0.5}, "severe_below"),
    ({"rapid_decline_below": 1.0}, "rapid_decline_below"),
    ({"febrile_falling_below": 1}, "febrile_falling_below"),
    ({"profiles": {"si": {"normal": 1.5, "mild": 1.0, "moderate": 0.5, "agranulocytosis": 0.1}},
      "profile": "si"}, "profiles.si.normal"),
    ({"profiles": {"us": {"agranulocytosis": 0.1}}}, "profiles.us.agranulocytosis"),
    ({"patients": {"p1": {"normal_threshold": 1.5}}}, "patients.p1.normal_threshold"),
    ({"patients": {"p1": {"baseline_anc": 1.2}}}, "patients.p1.baseline_anc"),
    ({"patients": {"p1": {"baseline_anc": 0}}}, "patients.p1.baseline_anc"),
    ({"profiles": {"us": {"age_bands": [{"max_age_days": 365, "normal": 1.0}]}}},
     "profiles.us.age_bands[0].normal"),
])
def test_an_anc_threshold_in_10e9_per_litre_is_refused_saying_thresholds_are_in_cells_per_ul(mapping, where):
    message = refused(mapping)
    assert f"'{where}'" in message and "cells/uL" in message and "1500 not 1.5" in message


def test_an_anc_threshold_per_litre_is_refused():
    assert "cells/uL" in refused({"severe_below": 5e8})


def test_grade_limits_must_be_ordered():
    message = refused({"profiles": {"us": {"mild": 400}}})  # below moderate 500
    assert "'profiles.us'" in message and "agranulocytosis < moderate < mild <= normal" in message
    assert "'profiles.x'" in refused({"profiles": {"x": {"normal": 1500, "mild": 1000, "moderate": 500,
                                                         "agranulocytosis": 500}}})
    assert "'profiles.x'" in refused({"profiles": {"x": {"normal": 900, "mild": 1000}}})
    # a profile without a mild grade (mild = normal) is allowed
    DetectionConfig.from_mapping({"profiles": {"x": {"normal": 1000, "mild": 1000}}})


def test_severe_below_must_lie_between_agranulocytosis_and_mild():
    assert "'severe_below'" in refused({"severe_below": 80})  # below agranulocytosis (100)
    assert "'severe_below'" in refused({"severe_below": 1200})  # a mild count is not severe
    assert DetectionConfig.from_mapping({"severe_below": 800}).severe_below == 800


def test_an_override_normal_limit_must_lie_above_agranulocytosis():
    assert "'patients.p1.normal_threshold'" in refused({"patients": {"p1": {"normal_threshold": 90}}})
    assert "'patients.p1.baseline_anc'" in refused({"patients": {"p1": {"baseline_anc": 100}}})  # x 0.8 = 80


def test_an_age_band_is_checked():
    assert "max_age_days" in refused({"profiles": {"us": {"age_bands": [{"max_age_days": "365"}]}}})
    assert "max_age_days" in refused({"profiles": {"us": {"age_bands": [{"max_age_days": 0}]}}})
    assert "max_age_days is missing" in refused({"profiles": {"us": {"age_bands": [{"normal": 1000}]}}})
    assert "'profiles.us.age_bands[0]'" in refused(
        {"profiles": {"us": {"age_bands": [{"max_age_days": 365, "normal": 900, "mild": 1000}]}}})


def test_temperatures_are_in_celsius_and_ordered():
    message = refused({"febrile_single_c": 101, "febrile_sustained_c": 100.4})
    assert "'febrile_single_c'" in message and "Celsius" in message
    assert "'febrile_sustained_c'" in refused({"febrile_sustained_c": 38.5})  # above single 38.3
    assert DetectionConfig.from_mapping({"febrile_single_c": 38.0}).febrile_single_c == 38.0


@pytest.mark.parametrize("name, value", [
    ("history_days", 0), ("episode_gap_days", 0), ("chronic_days", -1), ("rapid_decline_hours", 0),
    ("febrile_sustained_minutes", 0), ("febrile_sustained_max_gap_minutes", 0),
    ("history_temperature_days", 0), ("cyclic_min_period_days", 0), ("ivig_course_gap_days", -4),
    ("febrile_anc_hours", -1), ("confirmations", 0), ("confirmations", 1.5), ("history_max_anc", 0),
    ("history_max_temperatures", 1), ("cyclic_min_points", 2), ("baseline_fraction", 80),
    ("baseline_fraction", 0), ("rapid_decline_fraction", 1.5), ("cyclic_max_fap", 0),
    ("ivig_escalation_ratio", 0.9), ("ivig_early_hours", [54, 18]), ("ivig_early_hours", [12]),
    ("cyclic_min_period_days", 40), ("history_temperature_days", 0.01), ("profile", 3),
    ("ivig_drug_class", ""),
])
def test_out_of_range_windows_counts_and_fractions_are_refused(name, value):
    assert f"'{name}'" in refused({name: value})


def test_the_watch_list_is_checked():
    assert "'watch_list[0].windows_days[0]'" in refused(
        {"watch_list": [{"drug_class": "clozapine", "windows_days": [["0", "7"]]}]})
    assert "'watch_list[0].windows_days[0]'" in refused(
        {"watch_list": [{"drug_class": "clozapine", "windows_days": [[7, 0]]}]})
    assert "drug_class is missing" in refused({"watch_list": [{"windows_days": [[0, 7]]}]})
    assert "'watch_list[0].drug_class'" in refused({"watch_list": [{"drug_class": ""}]})
    assert "'watch_list'" in refused({"watch_list": "clozapine"})


def test_unknown_nested_settings_are_a_value_error_naming_them():
    # were TypeErrors from the dataclasses (unexpected keyword argument), past analyze's handler
    assert "'patients.p1.baseline'" in refused({"patients": {"p1": {"baseline": 1000}}})
    assert "'profiles.us.severe'" in refused({"profiles": {"us": {"severe": 500}}})
    assert "'profiles.us.age_bands[0].max_age'" in refused(
        {"profiles": {"us": {"age_bands": [{"max_age": 365}]}}})
    assert "'watch_list[0].window_days'" in refused({"watch_list": [{"drug_class": "x", "window_days": []}]})
    assert "'patients'" in refused({"patients": ["p1"]})
    assert "'patients.p1.profile'" in refused({"patients": {"p1": {"profile": "mars"}}})


def test_a_valid_file_still_alerts_as_before():
    config = DetectionConfig.from_mapping({"severe_below": 500})
    assert [a.kind for a in run([anc(0, 3000), anc(2, 300)], config)] == ["severe_neutropenia"]
    fever = reading("body_temperature", timedelta(days=2, hours=3), 39.0)
    assert "febrile_neutropenia" in [a.kind for a in run([anc(0, 3000), anc(2, 300), fever], config)]


def test_analyze_stops_at_start_with_the_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "detection.yaml"
    bad.write_text('severe_below: "500"\n', encoding="utf-8")
    data = tmp_path / "none.ndjson"
    data.write_text("", encoding="utf-8")
    parser = argparse.ArgumentParser()
    analyze.add_arguments(parser)
    rc = analyze.run(parser.parse_args(["--config", str(bad), str(data)]))
    err = capsys.readouterr().err
    assert rc == 1
    assert err.strip() == ("neutrowatch analyze: detection setting 'severe_below': must be a number, "
                           "not the text '500' (write it without quotes)")


@pytest.mark.parametrize("command", ["up", "monitor"])
def test_a_bad_settings_file_stops_the_command_at_start_naming_the_setting(tmp_path, command):
    from neutrowatch.cli import build_parser, settings_from
    path = tmp_path / "detection.yaml"
    path.write_text('severe_below: "500"\n')
    with pytest.raises(SystemExit) as info:
        settings_from(build_parser().parse_args([command, "--detection-config-file", str(path)]))
    assert "invalid setting" in str(info.value) and "'severe_below'" in str(info.value)
    with pytest.raises(SystemExit) as info:
        settings_from(build_parser().parse_args([command, "--detection-config-file", str(tmp_path / "none.yaml")]))
    assert "cannot read" in str(info.value)
