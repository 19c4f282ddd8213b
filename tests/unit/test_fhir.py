from datetime import datetime, timezone

import pytest

from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.fhir import parse_fhir, resource_kind
from samples import (FHIR_IVIG, FHIR_MEDADMIN_KCL, GHP_BUNDLE, NIST_BUNDLE, R7_WBC, R8_NEUT_PCT, R9_ANC,
                     USCORE_NEUT_PCT, bundle_of, fhir)

EFFECTIVE = "2015-08-16T06:40:17Z"


def rejected(resource, expected_type=None):
    with pytest.raises(InputRejected) as info:
        parse_fhir(resource, expected_type=expected_type)
    return info.value.rejection


def with_effective(resource):
    resource["effectiveDateTime"] = EFFECTIVE
    return resource


def test_ghp_bundle_gives_direct_anc_inherited_from_the_report():
    [anc] = parse_fhir(fhir(GHP_BUNDLE))
    assert (anc.value, anc.provenance, anc.patient_id, anc.status) == (900, "direct", "pat2", "F")
    assert anc.collected_at == datetime(2015, 8, 16, 6, 40, 17, tzinfo=timezone.utc)
    assert anc.code.code == "751-8" and anc.specimen_id == "Specimen/ltt"


def test_ghp_bundle_without_r9_derives_920():
    bundle = fhir(GHP_BUNDLE)
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"].get("id") != "r9"]
    [anc] = parse_fhir(bundle)
    assert (anc.value, anc.provenance) == (pytest.approx(920), "derived")
    assert sorted((c.role, c.code) for c in anc.components) == [("neutrophils_percent", "770-8"), ("wbc", "6690-2")]


def test_r7_r8_in_one_bundle_derive_920():
    [anc] = parse_fhir(bundle_of(with_effective(fhir(R7_WBC)), with_effective(fhir(R8_NEUT_PCT))))
    assert (anc.value, anc.provenance, anc.patient_id) == (pytest.approx(920), "derived", "pat2")


def test_single_direct_observation():
    [anc] = parse_fhir(with_effective(fhir(R9_ANC)), expected_type="Observation")
    assert (anc.value, anc.original_unit) == (900, "10*9/L")


def test_percent_alone_gives_nothing():
    assert parse_fhir(fhir(USCORE_NEUT_PCT)) == []


def test_nist_bundle_gives_58000():
    [anc] = parse_fhir(fhir(NIST_BUNDLE))
    assert anc.value == 58000 and anc.provenance == "direct"


def test_observation_id_is_stable_across_statuses():
    final = with_effective(fhir(R9_ANC))
    corrected = with_effective(fhir(R9_ANC))
    corrected["status"] = "corrected"
    corrected["valueQuantity"]["value"] = 0.8
    [f], [c] = parse_fhir(final), parse_fhir(corrected)
    assert f.observation_id == c.observation_id and f.event_id != c.event_id
    assert (c.status, c.value) == ("C", 800)


def test_cancelled_observation_has_no_value():
    obs = with_effective(fhir(R9_ANC))
    obs["status"] = "cancelled"
    del obs["valueQuantity"]
    [x] = parse_fhir(obs)
    assert (x.status, x.value) == ("X", None)


def test_subject_identifier_and_absolute_reference():
    obs = with_effective(fhir(R9_ANC))
    obs["subject"] = {"identifier": {"system": "urn:oid:1.2.3", "value": "MRN9"}}
    [a] = parse_fhir(obs)
    assert (a.patient_id, a.assigning_authority) == ("MRN9", "urn:oid:1.2.3")
    obs["subject"] = {"reference": "https://fhir.example/base/Patient/p77"}
    assert parse_fhir(obs)[0].patient_id == "p77"


def test_ivig_medication_administration():
    [admin] = parse_fhir(fhir(FHIR_IVIG), expected_type="MedicationAdministration")
    assert (admin.drug_class, admin.medication.code, admin.status) == ("ivig", "J06BA02", "completed")
    assert (admin.dose.value, admin.dose.mg) == (70, 70000)
    assert admin.ended_at.isoformat() == "2024-03-05T12:30:00+00:00"


def test_r5_occurence_spelling_and_contained_medication():
    admin = fhir(FHIR_IVIG)
    admin["occurenceDateTime"] = admin.pop("effectivePeriod")["start"]
    assert parse_fhir(admin)[0].started_at.isoformat() == "2024-03-05T08:30:00+00:00"
    [kcl] = parse_fhir(fhir(FHIR_MEDADMIN_KCL))
    assert kcl.drug_class is None and kcl.medication.code == "204520"


@pytest.mark.parametrize("mutate,code,field", [
    (lambda r: r.pop("subject"), "missing_subject", "Observation.subject"),
    (lambda r: r.pop("effectiveDateTime"), "missing_effective_time", "Observation.effective[x]"),
    (lambda r: r["valueQuantity"].update(value="lots"), "non_numeric_value", "Observation.valueQuantity.value"),
    (lambda r: r["valueQuantity"].update(value=-1), "implausible_value", "Observation.valueQuantity.value"),
    (lambda r: r["valueQuantity"].update(value=250), "implausible_value", "Observation.valueQuantity.value"),
    (lambda r: r["valueQuantity"].update(code="mmol/L", unit="mmol/L"), "unknown_unit", "Observation.valueQuantity.unit"),
    (lambda r: [r["valueQuantity"].pop(k) for k in ("code", "unit")], "missing_unit", "Observation.valueQuantity.unit"),
])
def test_observation_rejections(mutate, code, field):
    obs = with_effective(fhir(R9_ANC))
    mutate(obs)
    r = rejected(obs)
    assert (r.code, r.field) == (code, field)


def test_rejections_inside_a_bundle_name_the_entry():
    bundle = fhir(GHP_BUNDLE)
    bundle["entry"][13]["resource"]["valueQuantity"]["code"] = "mmol/L"
    r = rejected(bundle)
    assert (r.code, r.field) == ("unknown_unit", "Bundle.entry[13].resource.Observation.valueQuantity.unit")


def test_missing_effective_in_a_bundle_without_report():
    r = rejected(bundle_of(fhir(R7_WBC), fhir(R8_NEUT_PCT)))
    assert (r.code, r.field) == ("missing_effective_time", "Bundle.entry[0].resource.Observation.effective[x]")


@pytest.mark.parametrize("resource,expected,code", [
    ({"resourceType": "Patient", "id": "x"}, None, "wrong_resource_type"),
    ({"id": "x"}, None, "missing_resource_type"),
    ({"resourceType": "Bundle", "type": "collection"}, "Observation", "wrong_resource_type"),
])
def test_resource_type_rejections(resource, expected, code):
    r = rejected(resource, expected)
    assert (r.code, r.field) == (code, "resourceType")


def test_bundle_type_rejection():
    r = rejected({"resourceType": "Bundle", "type": "searchset", "entry": []})
    assert (r.code, r.field) == ("unsupported_bundle_type", "Bundle.type")


@pytest.mark.parametrize("mutate,code,field", [
    (lambda r: r.pop("subject"), "missing_subject", "MedicationAdministration.subject"),
    (lambda r: r.pop("effectivePeriod"), "missing_effective_time", "MedicationAdministration.effective[x]"),
    (lambda r: r.pop("medicationCodeableConcept"), "missing_medication", "MedicationAdministration.medication[x]"),
    (lambda r: r["dosage"]["dose"].update(value=0), "bad_dose", "MedicationAdministration.dosage.dose.value"),
    (lambda r: r.update(status="paused"), "unknown_administration_status", "MedicationAdministration.status"),
])
def test_medication_administration_rejections(mutate, code, field):
    admin = fhir(FHIR_IVIG)
    mutate(admin)
    r = rejected(admin)
    assert (r.code, r.field) == (code, field)


def test_resource_kind():
    assert resource_kind(fhir(FHIR_IVIG)) == "MedicationAdministration"
    assert resource_kind(fhir(R9_ANC)) == "Observation"
    assert resource_kind(fhir(GHP_BUNDLE)) == "Bundle"
    assert resource_kind({"resourceType": "Patient"}) is None and resource_kind([]) is None
