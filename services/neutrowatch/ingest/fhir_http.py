"""FHIR R4 JSON over HTTP: POST /fhir/Observation, /fhir/MedicationAdministration, /fhir (Bundle).

2xx only after Kafka acknowledged every event; 4xx with an OperationOutcome naming the field
and the problem (the body then goes to the dead-letter topic); 503 when Kafka cannot take it.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from aiohttp import web

from neutrowatch.domain.codes import CodeMap
from neutrowatch.domain.events import Rejection, Source
from neutrowatch.ingest.dead_letters import dead_letter
from neutrowatch.domain.timing import DEFAULT_TOLERANCE
from neutrowatch.ingest.records import records_of
from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.fhir import BY_REFERENCE, PatientIdentity, parse_fhir
from neutrowatch.platform import metrics
from neutrowatch.platform.kafka import OutRecord, PublishError, Publisher
from neutrowatch.schemas import SchemaError

CHANNEL = "fhir"
FHIR_JSON = "application/fhir+json"
# Refusals FHIR calls "could not be parsed or failed basic validation" (400); the rest break our
# business rules (422).
_BAD_REQUEST = {"not_json", "not_a_resource", "wrong_resource_type", "missing_resource_type",
                "unsupported_bundle_type"}
_ISSUE_CODE = {"message_too_large": "too-long", "not_json": "structure", "not_a_resource": "structure", "missing_subject": "required",
               "missing_patient_identifier": "required",
               "missing_effective_time": "required", "missing_resource_type": "required"}


class FhirIntake:
    def __init__(self, publisher: Publisher, codes: CodeMap,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 identity: PatientIdentity = BY_REFERENCE, future_tolerance: timedelta = DEFAULT_TOLERANCE):
        """``identity``: how a subject becomes a patient key (the ``fhir_patient_identity`` and
        ``fhir_identifier_systems`` settings); ``future_tolerance``: how far ahead of the clock an
        event may be dated (``future_tolerance_seconds``)."""
        self._future_tolerance = future_tolerance
        self._publisher = publisher
        self._codes = codes
        self._clock = clock
        self._identity = identity

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/fhir/Observation", self._observation),
                web.post("/fhir/MedicationAdministration", self._administration),
                web.post("/fhir", self._bundle)]

    async def _observation(self, request: web.Request) -> web.Response:
        return await self._post(request, "Observation")

    async def _administration(self, request: web.Request) -> web.Response:
        return await self._post(request, "MedicationAdministration")

    async def _bundle(self, request: web.Request) -> web.Response:
        return await self._post(request, "Bundle")

    async def _post(self, request: web.Request, expected: str) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await self._refuse(b"", Rejection(
                "message_too_large", f"the body exceeds the {request.app._client_max_size}-byte limit"))
        try:
            resource = _json_object(body)
            events = parse_fhir(resource, self._codes, expected_type=expected, identity=self._identity)
            records = records_of(events, self._clock(), self._future_tolerance, _TIME_FIELDS)
            await self._publish(records)
        except InputRejected as exc:
            response = await self._refuse(body, exc.rejection)
        except PublishError:
            response = _outcome(503, "error", "transient", _UNAVAILABLE, headers={"Retry-After": "5"})
            metrics.INGEST_MESSAGES.labels(CHANNEL, "unavailable").inc()
        else:
            response = _accepted(resource, len(records))
            metrics.INGEST_MESSAGES.labels(CHANNEL, "accepted" if records else "ignored").inc()
        metrics.INGEST_ACK_SECONDS.labels(CHANNEL).observe(time.perf_counter() - started)
        return response

    async def _publish(self, records: list[OutRecord]) -> None:
        try:
            await self._publisher.publish(records)
        except SchemaError as exc:
            raise InputRejected("schema_violation", f"normalised event fails its schema at {exc.field}: "
                                f"{exc.message}") from exc
        for record in records:
            metrics.INGEST_EVENTS.labels(record.topic).inc()

    async def _refuse(self, body: bytes, rejection: Rejection) -> web.Response:
        metrics.INGEST_REJECTIONS.labels(CHANNEL, rejection.code).inc()
        try:
            await self._publisher.publish([dead_letter(body, rejection, Source(type="fhir"), self._clock())])
        except (PublishError, SchemaError):
            metrics.INGEST_MESSAGES.labels(CHANNEL, "unavailable").inc()
            return _outcome(503, "error", "transient", _UNAVAILABLE, headers={"Retry-After": "5"})
        metrics.INGEST_MESSAGES.labels(CHANNEL, "rejected").inc()
        status = 413 if rejection.code == "message_too_large" else 400 if rejection.code in _BAD_REQUEST else 422
        return _outcome(status, "error", _ISSUE_CODE.get(rejection.code, "invalid"), rejection)


_UNAVAILABLE = Rejection("kafka_unavailable", "the resource could not be stored (Kafka unavailable); retry later")
_TIME_FIELDS = {"collected_at": "Observation.effective[x]", "started_at": "MedicationAdministration.effective[x]",
                "reported_at": "Observation.issued", "birth_date": "Patient.birthDate"}


def _json_object(body: bytes) -> dict:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputRejected("not_json", f"the body is not JSON: {exc}") from exc
    except RecursionError:
        raise InputRejected("not_json", "the body is JSON nested too deeply to be a FHIR resource") from None
    if not isinstance(value, dict):
        raise InputRejected("not_a_resource", "the body is JSON but not a FHIR resource (an object)")
    return value


def _outcome(status: int, severity: str, code: str, rejection: Rejection, headers=None) -> web.Response:
    issue = {"severity": severity, "code": code,
             "details": {"coding": [{"system": "https://neutrowatch.example/fhir/rejection",
                                     "code": rejection.code}], "text": rejection.reason},
             "diagnostics": rejection.reason}
    if rejection.field:
        issue["expression"] = [rejection.field]
    return _fhir_response(status, {"resourceType": "OperationOutcome", "issue": [issue]}, headers)


def _accepted(resource: dict, events: int) -> web.Response:
    if resource.get("resourceType") != "Bundle":
        note = Rejection("accepted", f"accepted: {events} event(s) committed")
        return _outcome(201 if events else 200, "information", "informational", note)
    kind = "transaction-response" if resource.get("type") == "transaction" else "batch-response"
    entries = [{"response": {"status": "204 No Content" if _method(entry) == "DELETE" else "201 Created"}}
               for entry in resource.get("entry") or ()]
    return _fhir_response(200, {"resourceType": "Bundle", "type": kind, "entry": entries})


def _method(entry) -> str:
    request = entry.get("request") if isinstance(entry, dict) else None
    method = request.get("method") if isinstance(request, dict) else None
    return method.strip().upper() if isinstance(method, str) else ""


def _fhir_response(status: int, body: dict, headers=None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type=FHIR_JSON, headers=headers)
