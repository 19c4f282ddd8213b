from datetime import datetime, timezone

import pytest

from neutrowatch.domain.events import Coding
from neutrowatch.domain.specimens import Part, anc_from_parts
from neutrowatch.parsing.errors import InputRejected

T = datetime(2024, 1, 1, tzinfo=timezone.utc)


def part(role, value, status="F", number=None, unit="x", code="c"):
    return Part(role=role, value=value, status=status, code=Coding(code), collected_at=T,
                value_field=f"F[{role}]", reported_number=number if number is not None else value,
                original_unit=unit)


def test_direct_wins_over_derivation():
    found = anc_from_parts([part("wbc", 4600), part("neutrophils_percent", 20), part("anc_direct", 900)])
    assert (found.value, found.provenance, found.components) == (900, "direct", ())


def test_segmented_plus_bands():
    found = anc_from_parts([part("anc_segmented", 800), part("bands_absolute", 100)])
    assert (found.value, found.provenance) == (900, "derived")
    assert [c.role for c in found.components] == ["anc_segmented", "bands_absolute"]


def test_derived_from_wbc_and_percents_including_bands():
    found = anc_from_parts([part("wbc", 5000, number=5.0, unit="10*9/L"), part("neutrophils_percent", 50),
                            part("bands_percent", 10)])
    assert (found.value, found.provenance) == (3000, "derived")
    assert [(c.role, c.value, c.unit) for c in found.components][0] == ("wbc", 5.0, "10*9/L")


def test_fraction_counts_as_percent():
    found = anc_from_parts([part("wbc", 5000), part("neutrophils_fraction", 55, number=0.55, unit="1")])
    assert found.value == pytest.approx(2750)


def test_no_anc_without_both_wbc_and_percent():
    assert anc_from_parts([part("neutrophils_percent", 72)]) is None
    assert anc_from_parts([part("wbc", 8200)]) is None


def test_derived_status_is_the_least_final_part():
    assert anc_from_parts([part("wbc", 5000, "F"), part("neutrophils_percent", 50, "P")]).status == "P"
    assert anc_from_parts([part("wbc", 5000, "C"), part("neutrophils_percent", 50, "F")]).status == "C"
    assert anc_from_parts([part("wbc", 5000, "F"), part("neutrophils_percent", 50, "F")]).status == "F"


@pytest.mark.parametrize("parts", [[part("anc_direct", -1)], [part("anc_direct", 200_001)],
                                   [part("body_temperature", 50)], [part("neutrophils_percent", 120)]])
def test_implausible_values_are_rejected(parts):
    with pytest.raises(InputRejected) as info:
        anc_from_parts(parts)
    assert info.value.rejection.code == "implausible_value"
