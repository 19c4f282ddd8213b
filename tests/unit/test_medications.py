import pytest

from neutrowatch.domain.events import Coding, Dose
from neutrowatch.domain.medications import classify, normalise_dose


@pytest.mark.parametrize("coding,expected", [
    (Coding("J06BA02", "ATC"), "ivig"),
    (Coding("123", "local", "PRIVIGEN 10% infusion"), "ivig"),
    (Coding("x", None, "Immune Globulin Intravenous (Human)"), "ivig"),
    (Coding("x", None, "Gamunex-C"), "ivig"),
    (Coding("L03AA02", "ATC"), "gcsf"),
    (Coding("L03AA13", "ATC"), "gcsf"),
    (Coding("x", None, "Pegfilgrastim 6 mg"), "gcsf"),
    (Coding("L01FA01", "ATC"), "rituximab"),
    (Coding("L01XC02", "ATC"), "rituximab"),
    (Coding("x", None, "Rituximab 500 mg"), "rituximab"),
    (Coding("x", None, "Hepatitis B immune globulin"), None),
    (Coding("204520", "rxnorm", "Potassium Chloride"), None),
])
def test_classify(coding, expected):
    assert classify(coding) == expected


@pytest.mark.parametrize("value,unit,expected", [
    (1, "g/kg", Dose(1, "g/kg", mg_per_kg=1000)),
    (600, "mg/kg", Dose(600, "mg/kg", mg_per_kg=600)),
    (70, "g", Dose(70, "g", mg=70000)),
    (6, "mg", Dose(6, "mg", mg=6)),
    (300, "mcg", Dose(300, "mcg", mg=0.3)),
    (20, "meq", Dose(20, "meq")),
])
def test_normalise_dose(value, unit, expected):
    assert normalise_dose(value, unit) == expected
