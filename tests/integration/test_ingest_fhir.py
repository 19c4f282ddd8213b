"""FHIR R4 JSON over real HTTP into a running `neutrowatch up`."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from kafka_reader import read_records
from processes import http_json, start_up

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parents[1] / "fixtures" / "fhir"
LAB = "neutrowatch.lab-results.v1"
DEAD = "neutrowatch.dead-letter.v1"
HEADERS = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def base_url(kafka_bootstrap, redis_url):
    service, _, http_port = start_up(kafka_bootstrap, redis_url)
    yield f"http://127.0.0.1:{http_port}"
    service.stop()


def observation(patient: str, **changes) -> dict:
    resource = json.loads((FIXTURES / "fhir3.6.0__diagnosticreport-example-ghp__Observation-r9_751-8.json")
                          .read_text(encoding="utf-8-sig"))
    resource.update(subject={"reference": f"Patient/{patient}"}, effectiveDateTime="2026-02-01T08:00:00Z",
                    id=uuid.uuid4().hex)
    resource.update(changes)
    return {k: v for k, v in resource.items() if v is not None}


def post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http_json(url, data=data, headers=HEADERS, method="POST")


def test_observation_is_committed_before_201(base_url, kafka_bootstrap):
    patient = "FHIR-" + uuid.uuid4().hex[:8]
    status, outcome = post(f"{base_url}/fhir/Observation", observation(patient))
    assert status == 201 and outcome["resourceType"] == "OperationOutcome"
    records = read_records(kafka_bootstrap, LAB, lambda r: r["patient_id"] == patient, expect=1)
    assert [(r["value"], r["provenance"], r["collected_at"]) for r in records] == [(900, "direct", "2026-02-01T08:00:00+00:00")]


def test_bundle_with_report_gives_its_anc(base_url, kafka_bootstrap):
    bundle = json.loads((FIXTURES / "fhir3.6.0__diagnosticreport-example-ghp.json").read_text(encoding="utf-8-sig"))
    status, response = post(f"{base_url}/fhir", bundle)
    assert status == 200 and response["type"] == "batch-response"
    records = read_records(kafka_bootstrap, LAB, lambda r: r["patient_id"] == "pat2", expect=1)
    assert records and records[0]["value"] == 900


@pytest.mark.parametrize("path, body, status, code, field", [
    ("/fhir/Observation", b"{not json", 400, "not_json", None),
    ("/fhir/Observation", {"resourceType": "Patient", "id": "x"}, 400, "wrong_resource_type", "resourceType"),
    ("/fhir/Observation", "missing-subject", 422, "missing_subject", "Observation.subject"),
    ("/fhir/Observation", "missing-effective", 422, "missing_effective_time", "Observation.effective"),
    ("/fhir/Observation", "in-2062", 422, "future_time", "Observation.effective[x]"),
    ("/fhir/Observation", "in-year-1", 422, "implausible_time", "Observation.effective[x]"),
])
def test_bad_fhir_gets_4xx_naming_the_field(base_url, kafka_bootstrap, path, body, status, code, field):
    marker = uuid.uuid4().hex
    if body == "missing-subject":
        body = observation("X", subject=None, id=marker)
    elif body == "missing-effective":
        body = observation("X", effectiveDateTime=None, id=marker)
    elif body == "in-2062":
        body = observation("X", effectiveDateTime="2062-02-01T08:00:00Z", id=marker)
    elif body == "in-year-1":  # a placeholder date: it would date the patient's episodes from then
        body = observation("X", effectiveDateTime="0001-01-01T00:00:00Z", id=marker)
    elif isinstance(body, dict):
        body = {**body, "id": marker}
    else:
        body = body + marker.encode()
    got_status, outcome = post(base_url + path, body)
    assert got_status == status
    issue = outcome["issue"][0]
    assert outcome["resourceType"] == "OperationOutcome" and issue["severity"] == "error"
    assert issue["details"]["coding"][0]["code"] == code
    if field:
        assert issue["expression"][0].startswith(field)
    letters = read_records(kafka_bootstrap, DEAD, lambda r: marker in r["raw"], expect=1)
    assert letters and letters[0]["reason_code"] == code
    # and the service keeps serving
    assert post(f"{base_url}/fhir/Observation", observation("ALIVE"))[0] == 201


# ----------------------------------------------------------------------------- Bundles a lab batches

def anc_observation(patient: str, **extra) -> dict:
    resource = {"resourceType": "Observation", "id": "anc1", "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
                "subject": {"reference": f"Patient/{patient}"},
                "effectiveDateTime": "2026-02-01T08:30:00+01:00",
                "valueQuantity": {"value": 0.4, "unit": "x10^3/uL", "system": "http://unitsofmeasure.org",
                                  "code": "10*3/uL"}}
    resource.update(extra)
    return resource


def test_a_preliminary_and_its_final_in_one_bundle_both_reach_kafka(base_url, kafka_bootstrap):
    # the final was lost: only the first version of the Observation was published
    patient = "FHIR-" + uuid.uuid4().hex[:8]
    final_value = {"value": 0.3, "unit": "x10^3/uL", "code": "10*3/uL", "system": "http://unitsofmeasure.org"}
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": anc_observation(patient, status="preliminary", issued="2026-02-01T09:00:00+01:00")},
        {"resource": anc_observation(patient, issued="2026-02-01T10:00:00+01:00", valueQuantity=final_value)}]}
    status, _ = post(f"{base_url}/fhir", bundle)
    assert status == 200
    records = read_records(kafka_bootstrap, LAB, lambda r: r["patient_id"] == patient, expect=2)
    assert [(r["status"], r["value"]) for r in records] == [("P", 400), ("F", 300)]
    assert records[0]["observation_id"] == records[1]["observation_id"]
    assert records[0]["event_id"] != records[1]["event_id"]


def test_a_delete_entry_reaches_kafka_as_a_deletion(base_url, kafka_bootstrap):
    # a transaction DELETE of the 400 result was published as a new final 400
    patient = "FHIR-" + uuid.uuid4().hex[:8]
    assert post(f"{base_url}/fhir/Observation", anc_observation(patient))[0] == 201
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Observation/anc1"}, "resource": anc_observation(patient)}]}
    status, body = post(f"{base_url}/fhir", bundle)
    assert status == 200 and body["entry"][0]["response"]["status"] == "204 No Content"
    given, deleted = read_records(kafka_bootstrap, LAB, lambda r: r["patient_id"] == patient, expect=2)
    assert (given["status"], given["value"]) == ("F", 400)
    assert deleted["status"] == "D" and "value" not in deleted
    assert deleted["observation_id"] == given["observation_id"]


def test_a_delete_by_url_alone_is_refused_and_nothing_is_published(base_url, kafka_bootstrap):
    patient = "FHIR-" + uuid.uuid4().hex[:8]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": anc_observation(patient, id="other")},
        {"request": {"method": "DELETE", "url": "Observation/123"}}]}
    status, body = post(f"{base_url}/fhir", bundle)
    assert status == 422 and body["issue"][0]["expression"] == ["Bundle.entry[1].request"]
    assert read_records(kafka_bootstrap, LAB, lambda r: r["patient_id"] == patient, timeout=3) == []


# ----------------------------------------------------------------------------- one patient, two feeds

def test_identifier_mode_gives_hl7_and_fhir_events_of_one_person_one_patient_key(kafka_bootstrap, redis_url):
    # a hospital sending CBCs by HL7 and infusions and counts by FHIR had two histories per person
    # (HOSP|12345 and the FHIR Patient id 123): febrile and post-IVIG patterns went unseen
    from hl7.client import MLLPClient
    systems = json.dumps({"http://hospital.example/mrn": "HOSP"})
    service, mllp_port, http_port = start_up(
        kafka_bootstrap, redis_url, ["--fhir-patient-identity", "identifier", "--fhir-identifier-systems", systems])
    try:
        control_id, bundle_id = "T" + uuid.uuid4().hex[:18], uuid.uuid4().hex
        oru = "\r".join([
            f"MSH|^~\\&|LAB|HOSP|NW|HOSP|20260201120000+0000||ORU^R01|{control_id}|P|2.5.1",
            "PID|1||12345^^^HOSP^MR||Doe^Jane",
            f"OBR|1|ORD1|FILL-{control_id}|57021-8^CBC^LN|||20260201080000+0000",
            "OBX|1|NM|751-8^Neutrophils^LN||0.4|10*3/uL|||||F"]) + "\r"
        with MLLPClient("127.0.0.1", mllp_port) as client:
            assert b"MSA|AA|" + control_id.encode() in client.send_message(oru)
        patient = {"resourceType": "Patient", "id": "123", "identifier": [
            {"system": "http://other.example/ids", "value": "O-1"},
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "http://hospital.example/mrn", "value": "12345"}]}
        ivig = {"resourceType": "MedicationAdministration", "id": "ivig1", "status": "completed",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}]},
                "subject": {"reference": "Patient/123"}, "effectiveDateTime": "2026-02-01T10:00:00Z"}
        bundle = {"resourceType": "Bundle", "id": bundle_id, "type": "batch", "entry": [
            {"fullUrl": "https://fhir.example/Patient/123", "resource": patient},
            {"resource": anc_observation("123", id=bundle_id)}, {"resource": ivig}]}
        status, _ = post(f"http://127.0.0.1:{http_port}/fhir", bundle)
        assert status == 200

        [by_hl7] = read_records(kafka_bootstrap, LAB, lambda r: r["source"].get("message_id") == control_id, expect=1)
        [by_fhir] = read_records(kafka_bootstrap, LAB, lambda r: r["source"].get("message_id") == bundle_id, expect=1)
        [infusion] = read_records(kafka_bootstrap, "neutrowatch.medication-administrations.v1",
                                  lambda r: r["source"].get("message_id") == bundle_id, expect=1)
        assert [(r["_key"], r["patient_key"]) for r in (by_hl7, by_fhir, infusion)] == [("HOSP|12345", "HOSP|12345")] * 3
        assert (by_fhir["value"], infusion["drug_class"]) == (400, "ivig")

        # a subject that names no identifier is refused under this setting, the field named
        status, outcome = post(f"http://127.0.0.1:{http_port}/fhir/Observation", anc_observation("123"))
        issue = outcome["issue"][0]
        assert status == 422 and issue["expression"] == ["Observation.subject"]
        assert issue["details"]["coding"][0]["code"] == "missing_patient_identifier"
        assert "identifier is needed" in issue["details"]["text"]
    finally:
        service.stop()
