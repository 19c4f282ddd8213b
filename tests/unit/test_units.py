import math

import pytest
from hypothesis import given, strategies as st

from neutrowatch.domain.units import UnitError, from_canonical, known_units, to_canonical


@pytest.mark.parametrize("unit", ["10*3/uL", "K/uL", "10*9/L", "G/L", "x10^9/L", "x10*9/L",
                                  "giga.l-1", "10^3/uL", "thousand per microliter", "K/µL",
                                  "10*3/µL", "X10*9/L"])
def test_thousand_per_microlitre_units_multiply_by_1000(unit):
    assert to_canonical("count", 0.3, unit) == pytest.approx(300)


@pytest.mark.parametrize("unit", ["/uL", "/mm3", "cells/uL", "{cells}/uL", "/µL", "CELLS/UL"])
def test_per_microlitre_units_are_already_canonical(unit):
    assert to_canonical("count", 500, unit) == 500


@pytest.mark.parametrize("unit", ["%", "PERCENT", "percent", "%{WBCs}"])
def test_percent_units(unit):
    assert to_canonical("percent", 55, unit) == 55


def test_fraction_is_percent_over_100():
    assert to_canonical("percent", 0.55, "1") == pytest.approx(55)


@pytest.mark.parametrize("unit,value,expected", [("Cel", 38.3, 38.3), ("C", 38.3, 38.3),
                                                 ("degC", 38.3, 38.3), ("[degF]", 101.3, 38.5),
                                                 ("F", 212, 100), ("degF", 32, 0)])
def test_temperature(unit, value, expected):
    assert to_canonical("temperature", value, unit) == pytest.approx(expected)


@pytest.mark.parametrize("quantity,unit", [("count", "mmol/L"), ("count", "g/L"), ("count", "10*12/L"),
                                           ("percent", "mg"), ("temperature", "K")])
def test_unknown_units_are_refused(quantity, unit):
    with pytest.raises(UnitError) as info:
        to_canonical(quantity, 1.0, unit)
    assert info.value.kind == "unknown"


@pytest.mark.parametrize("unit", [None, "", "   "])
def test_missing_units_are_refused(unit):
    with pytest.raises(UnitError) as info:
        to_canonical("count", 1.0, unit)
    assert info.value.kind == "missing"


_PAIRS = [(q, u) for q in ("count", "percent", "temperature") for u in known_units(q)]


@given(st.sampled_from(_PAIRS), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_conversion_round_trips(pair, value):
    quantity, unit = pair
    back = from_canonical(quantity, to_canonical(quantity, value, unit), unit)
    assert math.isclose(back, value, rel_tol=1e-9, abs_tol=1e-9)


# Ingest audit: spellings real reports use. "10³/µL" is how the case report writes ANC 0.3 x 10³/µL
# and "mcL" is the US abbreviation of microlitre (K/mcL); both were refused as unknown units.
@pytest.mark.parametrize("unit", ["10³/µL", "x10³/uL", "×10⁹/L", "10⁹/L", "K/mcL", "x10E3/mcL",
                                  "10*3/mcL"])
def test_superscript_powers_and_mcl_multiply_by_1000(unit):
    assert to_canonical("count", 0.3, unit) == pytest.approx(300)


@pytest.mark.parametrize("unit", ["cells/mcL", "/mcL", "10⁶/L"])
def test_per_mcl_and_superscript_per_microlitre_are_canonical(unit):
    assert to_canonical("count", 500, unit) == 500


@pytest.mark.parametrize("unit", ["10¹²/L", "10⁶/µL"])
def test_superscript_units_that_are_not_white_cell_counts_are_refused(unit):
    with pytest.raises(UnitError):
        to_canonical("count", 1.0, unit)
