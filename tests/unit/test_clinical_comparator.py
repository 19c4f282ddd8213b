"""A count reported as a bound ("<0.1 x10^3/uL", FHIR valueQuantity.comparator "<") is graded as
below that figure, and the alert says "<100/uL": a patient with agranulocytosis (ANC < 100) must
not be reported as merely severe.

Each test failed before the fix committed with it.
"""
from __future__ import annotations

import json

import pytest

from neutrowatch.detection import PatientState, codec, run, step
from neutrowatch.domain.events import LabResult
from neutrowatch.parsing.fhir import parse_fhir
from neutrowatch.parsing.hl7v2 import parse_hl7
from neutrowatch.schemas import validate

MSH = "MSH|^~\\&|LAB|HOSP|NW|HOSP|20240101120000+0100||ORU^R01|MSG1|P|2.5.1"
PID = "PID|1||12345^^^HOSP^MR||Doe^Jane||19800101|F"
OBR = "OBR|1|ORD1|FIL1|57021-8^CBC^LN|||20240101083000+0100|||||||||||||||20240101100000+0100|||F"


def hl7_anc(value: str, value_type: str = "NM", unit: str = "10*3/uL") -> LabResult:
    obx = f"OBX|1|{value_type}|751-8^Neutrophils [#/volume] in Blood^LN||{value}|{unit}||L|||F"
    [anc] = parse_hl7("\r".join([MSH, PID, OBR, obx])).events
    return anc


def fhir_anc(value: float, comparator: str | None) -> LabResult:
    quantity = {"value": value, "unit": "x10^3/uL", "system": "http://unitsofmeasure.org",
                "code": "10*3/uL"}
    if comparator:
        quantity["comparator"] = comparator
    [anc] = parse_fhir({
        "resourceType": "Observation", "id": "anc1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-01T08:30:00+01:00", "valueQuantity": quantity})
    return anc


def kinds(alerts) -> set[str]:
    return {a.kind for a in alerts}


def only(alerts, kind):
    [alert] = [a for a in alerts if a.kind == kind]
    return alert


@pytest.mark.parametrize("value,value_type", [("<0.1", "NM"), ("<^0.1", "SN")])
def test_hl7_below_0_1_x10_3_is_agranulocytosis_and_the_alert_says_below_100(value, value_type):
    anc = hl7_anc(value, value_type)
    alerts = run([anc])
    assert "agranulocytosis" in kinds(alerts)
    alert = only(alerts, "agranulocytosis")
    assert "ANC <100/uL" in alert.summary and "ANC 100/uL" not in alert.summary
    [seen] = [o for o in alert.evidence["observations"] if o["observation_id"] == anc.observation_id]
    assert (seen["value"], seen["comparator"]) == (100, "<")
    assert alert.anc_cells_per_ul == 100
    # the canonical record carries the bound, and the lab-result schema accepts it
    assert (anc.value, anc.comparator, anc.original_value) == (100, "<", "<0.1")
    validate(anc.to_record())
    assert LabResult.from_record(json.loads(json.dumps(anc.to_record()))) == anc


def test_fhir_comparator_below_0_1_is_agranulocytosis():
    anc = fhir_anc(0.1, "<")
    alert = only(run([anc]), "agranulocytosis")
    assert "ANC <100/uL" in alert.summary
    assert (anc.value, anc.comparator) == (100, "<")
    validate(anc.to_record())


def test_below_0_5_is_severe_not_moderate():
    # "<0.5 x10^3/uL" is below 500: severe. It was graded as 500, moderate, with no alert.
    for anc in (hl7_anc("<0.5"), fhir_anc(0.5, "<")):
        alerts = run([anc])
        assert "severe_neutropenia" in kinds(alerts) and "agranulocytosis" not in kinds(alerts)
        assert "ANC <500/uL" in only(alerts, "severe_neutropenia").summary


def test_a_plain_count_is_graded_as_before():
    for anc in (hl7_anc("0.1"), fhir_anc(0.1, None), hl7_anc("=0.1"), fhir_anc(0.1, "<=")):
        assert anc.value == 100
        alerts = run([anc])
        assert "severe_neutropenia" in kinds(alerts) and "agranulocytosis" not in kinds(alerts)
        severe = only(alerts, "severe_neutropenia")
        assert "ANC 100/uL" in severe.summary
        assert all("comparator" not in o for o in severe.evidence["observations"])
    assert hl7_anc("0.1").comparator is None and fhir_anc(0.1, "<=").comparator == "<="


def test_above_a_figure_is_graded_above_it():
    # ">0.5": above 500, so not severe
    alerts = run([hl7_anc(">0.5")])
    assert "severe_neutropenia" not in kinds(alerts)


def test_the_stored_state_keeps_its_shape_and_round_trips_exactly():
    state, _ = step(PatientState.empty(), hl7_anc("<0.1"))
    stored = json.loads(json.dumps(codec.dump(state)))
    again = codec.load(stored)
    assert again.anc == state.anc and again.anc[0].v < 100
    assert [type(v) for v in stored["a"]["v"]] == [float]
    plain, _ = step(PatientState.empty(), hl7_anc("0.1"))
    assert codec.dump(plain)["a"].keys() == codec.dump(state)["a"].keys()


def test_a_correction_from_a_bound_to_a_count_is_a_new_version():
    below = fhir_anc(0.1, "<")
    exact = fhir_anc(0.1, None)
    assert below.observation_id == exact.observation_id and below.event_id != exact.event_id


def test_a_derived_count_from_a_wbc_below_a_figure_is_below_the_derived_figure():
    obxs = ["OBX|1|NM|6690-2^WBC^LN||<0.5|10*3/uL||L|||F",
            "OBX|2|NM|770-8^Neutrophils %^LN||20|%||L|||F"]
    [anc] = parse_hl7("\r".join([MSH, PID, OBR, *obxs])).events
    assert (anc.provenance, anc.value, anc.comparator) == ("derived", 100, "<")
    assert "agranulocytosis" in kinds(run([anc]))


def test_the_api_shows_a_bound_as_its_figure_and_comparator():
    from neutrowatch.detection import DetectionConfig
    from neutrowatch.monitor.views import anc_timeline, patient_state
    state = PatientState.empty()
    state, _ = step(state, hl7_anc("<0.1"))
    [point] = anc_timeline(state, {}, DetectionConfig())
    assert (point["value"], point["comparator"], point["grade"]) == (100, "<", "agranulocytosis")
    last = patient_state(state, DetectionConfig())["last_anc"]
    assert (last["value"], last["comparator"]) == (100, "<")
    plain = PatientState.empty()
    plain, _ = step(plain, hl7_anc("0.1"))
    assert "comparator" not in anc_timeline(plain, {}, DetectionConfig())[0]
