"""Who a FHIR subject is: the Patient's logical id (fhir_patient_identity=reference, the default)
or a patient identifier (identifier), with identifier systems mapped to HL7 assigning authorities
so that FHIR and HL7 v2 events of one person share a patient key."""
from __future__ import annotations

import argparse
import json

import pytest

from neutrowatch import analyze
from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.fhir import PatientIdentity, parse_fhir
from neutrowatch.parsing.hl7v2 import parse_hl7
from neutrowatch.platform.settings import Settings

MRN_SYSTEM = "http://hospital.example/mrn"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
BY_IDENTIFIER = PatientIdentity("identifier", {MRN_SYSTEM: "HOSP"})


def anc(subject: dict, **extra) -> dict:
    return {"resourceType": "Observation", "id": "anc1", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
            "subject": subject, "effectiveDateTime": "2026-02-01T08:30:00Z",
            "valueQuantity": {"value": 0.4, "system": "http://unitsofmeasure.org", "code": "10*3/uL"},
            **extra}


def ivig(subject: dict) -> dict:
    return {"resourceType": "MedicationAdministration", "id": "ivig1", "status": "completed",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]},
            "subject": subject, "effectiveDateTime": "2026-02-01T10:00:00Z"}


def patient(pid: str = "123", *identifiers: dict) -> dict:
    return {"resourceType": "Patient", "id": pid, "birthDate": "1980-01-01", "identifier": list(identifiers)}


def mr(value: str, system: str = MRN_SYSTEM) -> dict:
    return {"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "system": system, "value": value}


def bundle(*resources: dict, urls: tuple[str, ...] = ()) -> dict:
    entries = []
    for n, resource in enumerate(resources):
        entry = {"resource": resource}
        if n < len(urls):
            entry["fullUrl"] = urls[n]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}


def keys(events) -> list[tuple[str, str | None, str]]:
    return [(e.patient_id, e.assigning_authority, e.patient_key) for e in events]


def refused(resource, identity=BY_IDENTIFIER, expected_type=None):
    with pytest.raises(InputRejected) as info:
        parse_fhir(resource, identity=identity, expected_type=expected_type)
    return info.value.rejection


# ------------------------------------------------------------------------- reference (the default)

def test_reference_mode_keys_by_the_logical_id_even_when_the_patient_has_an_mrn():
    sent = bundle(patient("123", mr("12345")), anc({"reference": "Patient/123",
                                                     "identifier": {"system": MRN_SYSTEM, "value": "12345"}}))
    assert keys(parse_fhir(sent)) == [("123", None, "123")]
    assert keys(parse_fhir(sent, identity=PatientIdentity("reference", {MRN_SYSTEM: "HOSP"}))) == [("123", None, "123")]


def test_reference_mode_maps_the_system_of_an_identifier_only_subject():
    subject = {"identifier": {"system": MRN_SYSTEM, "value": "12345"}}
    assert keys(parse_fhir(anc(subject))) == [("12345", MRN_SYSTEM, f"{MRN_SYSTEM}|12345")]
    mapped = PatientIdentity("reference", {MRN_SYSTEM: "HOSP"})
    assert keys(parse_fhir(anc(subject), identity=mapped)) == [("12345", "HOSP", "HOSP|12345")]


# ------------------------------------------------------------------------- identifier

def test_identifier_mode_takes_the_identifier_the_reference_carries():
    subject = {"reference": "Patient/123", "identifier": {"system": MRN_SYSTEM, "value": "12345"}}
    assert keys(parse_fhir(anc(subject), identity=BY_IDENTIFIER)) == [("12345", "HOSP", "HOSP|12345")]
    [admin] = parse_fhir(ivig(subject), identity=BY_IDENTIFIER, expected_type="MedicationAdministration")
    assert admin.patient_key == "HOSP|12345"


def test_identifier_mode_takes_the_mr_identifier_of_the_patient_in_the_bundle():
    other = {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-99-9999"}
    insurance = {"type": {"coding": [{"system": V2_0203, "code": "MB"}]}, "system": "http://payer.example", "value": "P1"}
    sent = bundle(patient("123", other, insurance, mr("12345")), anc({"reference": "Patient/123"}),
                  ivig({"reference": "Patient/123"}))
    events = parse_fhir(sent, identity=BY_IDENTIFIER)
    assert sorted(keys(events)) == [("12345", "HOSP", "HOSP|12345")] * 2
    assert {e.__class__.__name__ for e in events} == {"LabResult", "MedicationAdministration"}
    lab = next(e for e in events if e.__class__.__name__ == "LabResult")
    assert lab.birth_date == "1980-01-01"


def test_identifier_mode_without_an_mr_takes_the_first_identifier():
    sent = bundle(patient("123", {"system": "urn:oid:1.2.3", "value": "A1"}, {"system": MRN_SYSTEM, "value": "B2"}),
                  anc({"reference": "Patient/123"}))
    assert keys(parse_fhir(sent, identity=BY_IDENTIFIER)) == [("A1", "1.2.3", "1.2.3|A1")]


def test_identifier_mode_resolves_a_patient_by_full_url():
    sent = bundle(patient("123", mr("12345")), anc({"reference": "urn:uuid:4b0f0d06-0000-4000-8000-000000000001"}),
                  urls=("urn:uuid:4b0f0d06-0000-4000-8000-000000000001",))
    assert keys(parse_fhir(sent, identity=BY_IDENTIFIER)) == [("12345", "HOSP", "HOSP|12345")]


def test_identifier_mode_takes_the_mr_of_a_contained_patient():
    resource = anc({"reference": "#p"}, contained=[
        {**patient("p", {"system": "http://other.example", "value": "X9"}, mr("12345")), "id": "p"}])
    assert keys(parse_fhir(resource, identity=BY_IDENTIFIER)) == [("12345", "HOSP", "HOSP|12345")]
    # mode reference keeps taking a contained Patient's first identifier, its system as it is
    assert keys(parse_fhir(resource)) == [("X9", "http://other.example", "http://other.example|X9")]


def test_an_unmapped_oid_system_is_keyed_by_the_oid_as_hl7_keys_an_oid_only_authority():
    subject = {"identifier": {"system": "urn:oid:2.16.840.1.113883.3.72.5.30.2", "value": "12345"}}
    [fhir_event] = parse_fhir(anc(subject), identity=PatientIdentity("identifier"))
    message = "\r".join([
        "MSH|^~\\&|LAB|HOSP|NW|HOSP|20260201100000+0000||ORU^R01|OID1|P|2.5.1",
        "PID|1||12345^^^&2.16.840.1.113883.3.72.5.30.2&ISO^MR||Doe^Jane",
        "OBR|1|ORD1|FIL1|57021-8^CBC^LN|||20260201083000+0000",
        "OBX|1|NM|751-8^Neutrophils^LN||0.4|10*3/uL|||||F"]) + "\r"
    [hl7_event] = parse_hl7(message).events
    assert fhir_event.patient_key == hl7_event.patient_key == "2.16.840.1.113883.3.72.5.30.2|12345"


def test_a_mapping_wins_over_the_oid_rule():
    identity = PatientIdentity("identifier", {"urn:oid:1.2.3": "HOSP"})
    subject = {"identifier": {"system": "urn:oid:1.2.3", "value": "12345"}}
    assert keys(parse_fhir(anc(subject), identity=identity)) == [("12345", "HOSP", "HOSP|12345")]


@pytest.mark.parametrize("resource, field", [
    (anc({"reference": "Patient/123"}), "Observation.subject"),  # not in the request at all
    (bundle(patient("123"), anc({"reference": "Patient/123"})), "Bundle.entry[1].resource.Observation.subject"),
    (bundle(ivig({"reference": "Patient/9"})), "Bundle.entry[0].resource.MedicationAdministration.subject"),
])
def test_identifier_mode_refuses_a_subject_without_an_identifier_naming_the_field(resource, field):
    rejection = refused(resource)
    assert (rejection.code, rejection.field) == ("missing_patient_identifier", field)
    assert "identifier is needed" in rejection.reason and "fhir_patient_identity=identifier" in rejection.reason
    assert parse_fhir(resource)  # the same request is keyed by reference in mode reference


def test_identifier_mode_refuses_a_contained_patient_without_an_identifier():
    resource = anc({"reference": "#p"}, contained=[{"resourceType": "Patient", "id": "p"}])
    rejection = refused(resource)
    assert (rejection.code, rejection.field) == ("missing_patient_identifier", "Observation.subject")
    assert "identifier is needed" in rejection.reason


def test_identifier_mode_still_refuses_a_subject_that_is_not_a_patient():
    subject = {"reference": "Group/1", "identifier": {"system": MRN_SYSTEM, "value": "12345"}}
    rejection = refused(anc(subject))
    assert (rejection.code, rejection.field) == ("missing_subject", "Observation.subject")


# ------------------------------------------------------------------------- settings

def test_settings_read_both_from_the_environment(monkeypatch):
    monkeypatch.setenv("NEUTROWATCH_FHIR_PATIENT_IDENTITY", "identifier")
    monkeypatch.setenv("NEUTROWATCH_FHIR_IDENTIFIER_SYSTEMS", json.dumps({MRN_SYSTEM: "HOSP"}))
    settings = Settings()
    assert (settings.fhir_patient_identity, settings.fhir_identifier_systems) == ("identifier", {MRN_SYSTEM: "HOSP"})


@pytest.mark.parametrize("args, message", [
    (["--fhir-patient-identity", "mrn"], "fhir_patient_identity"),
    (["--fhir-identifier-systems", "{not json"], "not JSON"),
    (["--fhir-identifier-systems", '["HOSP"]'], "fhir_identifier_systems"),
    (["--fhir-identifier-systems", json.dumps({MRN_SYSTEM: "HO|SP"})], "without '|'"),
])
def test_an_invalid_setting_stops_the_command_with_a_message(args, message):
    from neutrowatch.cli import build_parser, settings_from
    with pytest.raises(SystemExit) as info:
        settings_from(build_parser().parse_args(["up", *args]))
    assert "invalid setting" in str(info.value) and message in str(info.value)


def test_a_non_json_environment_value_stops_the_command_with_a_message(monkeypatch):
    from neutrowatch.cli import build_parser, settings_from
    monkeypatch.setenv("NEUTROWATCH_FHIR_IDENTIFIER_SYSTEMS", "HOSP")
    with pytest.raises(SystemExit) as info:
        settings_from(build_parser().parse_args(["up"]))
    assert "invalid setting" in str(info.value) and "fhir_identifier_systems" in str(info.value)


# ------------------------------------------------------------------------- analyze

def test_analyze_sees_a_fever_by_fhir_and_a_low_count_by_hl7_as_one_patient(tmp_path, capsys):
    hl7 = tmp_path / "cbc.hl7"
    hl7.write_text("\r".join([
        "MSH|^~\\&|LAB|HOSP|NW|HOSP|20260201100000+0000||ORU^R01|FN1|P|2.5.1",
        "PID|1||12345^^^HOSP^MR||Doe^Jane",
        "OBR|1|ORD1|FIL1|57021-8^CBC^LN|||20260201080000+0000",
        "OBX|1|NM|751-8^Neutrophils^LN||0.3|10*3/uL|||||F"]) + "\r")
    fever = {"resourceType": "Observation", "id": "t1", "status": "final",
             "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5"}]},
             "subject": {"reference": "Patient/123"}, "effectiveDateTime": "2026-02-01T09:00:00Z",
             "valueQuantity": {"value": 38.9, "system": "http://unitsofmeasure.org", "code": "Cel"}}
    fhir = tmp_path / "fever.json"
    fhir.write_text(json.dumps(bundle(patient("123", mr("12345")), fever)))

    def febrile(*options):
        parser = argparse.ArgumentParser()
        analyze.add_arguments(parser)
        assert analyze.run(parser.parse_args([*options, str(hl7), str(fhir)])) == 0
        alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        return [a["patient_key"] for a in alerts if a["kind"] == "febrile_neutropenia"]

    assert febrile() == []  # two histories: "123" and "HOSP|12345"
    assert febrile("--fhir-patient-identity", "identifier",
                   "--fhir-identifier-systems", json.dumps({MRN_SYSTEM: "HOSP"})) == ["HOSP|12345"]
