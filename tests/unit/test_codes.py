import pytest
import yaml

from neutrowatch.domain.codes import CodeMap
from samples import REPO


@pytest.mark.parametrize("system", ["LN", "http://loinc.org", None, ""])
def test_loinc_anc_codes_are_recognised_under_every_spelling_of_the_system(system):
    assert CodeMap().role_for(system, "751-8") == "anc_direct"


@pytest.mark.parametrize("code,role", [("26499-4", "anc_direct"), ("753-4", "anc_direct"),
                                       ("30451-9", "anc_segmented"), ("30229-9", "bands_absolute"),
                                       ("26511-6", "neutrophils_percent"), ("35332-6", "bands_percent"),
                                       ("71676-1", "neutrophils_fraction"), ("6690-2", "wbc"),
                                       ("804-5", "wbc"), ("8310-5", "body_temperature")])
def test_loinc_roles(code, role):
    assert CodeMap().role_for("LN", code) == role


def test_a_loinc_code_under_another_system_is_not_loinc():
    assert CodeMap().role_for("WinPath", "751-8") is None


def test_unmapped_and_local_codes_are_ignored_without_a_map():
    assert CodeMap().role_for("WinPath", "tt-0002-09") is None
    assert CodeMap().role_for("LN", "2345-7") is None


def test_example_config_maps_the_simhospital_codes():
    config = yaml.safe_load((REPO / "config" / "local-codes.example.yaml").read_text())
    codes = CodeMap.from_mapping(config)
    assert codes.role_for("WinPath", "tt-0002-09") == "anc_direct"
    assert codes.role_for("winpath", "tt-0002-07") == "wbc"
    assert codes.role_for("WinPath", "tt-0002-08") == "neutrophils_percent"
    assert codes.role_for("OtherLab", "tt-0002-09") is None


def test_a_local_code_without_system_matches_any_system():
    codes = CodeMap.from_mapping({"local_codes": [{"code": "NEUT#", "role": "anc_direct"}]})
    assert codes.role_for("LAB", "NEUT#") == "anc_direct"


@pytest.mark.parametrize("config,message", [
    ({"local_codes": [{"code": "x", "role": "neutrophil"}]}, "role 'neutrophil' is not one of"),
    ({"local_codes": [{"role": "wbc"}]}, "code must be a non-empty string"),
    ({"local_codes": "x"}, "must be a list"),
    (["x"], "must be a mapping"),
])
def test_bad_configuration_is_a_clear_value_error(config, message):
    with pytest.raises(ValueError, match=message):
        CodeMap.from_mapping(config)
