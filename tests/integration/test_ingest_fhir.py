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
])
def test_bad_fhir_gets_4xx_naming_the_field(base_url, kafka_bootstrap, path, body, status, code, field):
    marker = uuid.uuid4().hex
    if body == "missing-subject":
        body = observation("X", subject=None, id=marker)
    elif body == "missing-effective":
        body = observation("X", effectiveDateTime=None, id=marker)
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
