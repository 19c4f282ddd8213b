import json

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from neutrowatch.domain.codes import CodeMap
from neutrowatch.parsing.fhir import parse_fhir
from neutrowatch.parsing.hl7v2 import parse_hl7
from samples import FHIR_ALL, HL7_ALL, LAB_ORU_CODES, SCHEMAS, SIMHOSPITAL_CODES, fhir, hl7_bytes

_SCHEMAS = {p.name: json.loads(p.read_text()) for p in SCHEMAS.glob("*.schema.json")}
_REGISTRY = Registry().with_resources(
    (s["$id"], Resource.from_contents(s)) for s in _SCHEMAS.values())
_CODES = CodeMap.from_mapping({"local_codes": [
    *[{"code": c, "system": s, "role": r} for (s, c), r in SIMHOSPITAL_CODES.local.items()],
    *[{"code": c, "system": s, "role": r} for (s, c), r in LAB_ORU_CODES.local.items()],
]})


def validate(record):
    name = {"neutrowatch.lab-result.v1": "lab-result.v1.schema.json",
            "neutrowatch.medication-administration.v1": "medication-administration.v1.schema.json"}[record["schema"]]
    errors = list(Draft202012Validator(_SCHEMAS[name], registry=_REGISTRY).iter_errors(record))
    assert not errors, [e.message for e in errors]


def _events():
    for name in HL7_ALL:
        for event in parse_hl7(hl7_bytes(name), _CODES).events:
            yield name, event
    for name in FHIR_ALL:
        try:
            events = parse_fhir(fhir(name), _CODES)
        except Exception:
            continue  # split-out Observations without effective time are rejected by design
        for event in events:
            yield name, event


EVENTS = list(_events())


def test_samples_produce_events():
    assert len(EVENTS) >= 12


@pytest.mark.parametrize("name,event", EVENTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(EVENTS)])
def test_every_event_record_matches_its_schema(name, event):
    validate(event.to_record())


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_a_count_of_nan_or_infinity_is_refused_as_not_json(number):
    """Python's json reads them; a NaN count passes every minimum and maximum of the schema and is
    above every limit in the engine (a 300 then 'recovers'), so the monitor must refuse it."""
    from neutrowatch import schemas
    record = {"schema": "neutrowatch.lab-result.v1", "observation_id": "obs-nan-1", "event_id": "ev-nan-1",
              "patient_id": "p1", "patient_key": "p1", "analyte": "anc", "value": 1.0, "unit": "cells/uL",
              "status": "F", "collected_at": "2026-01-01T08:00:00+00:00", "source": {"type": "canonical"},
              "provenance": "direct"}
    assert schemas.decode(json.dumps(record).encode(), "lab-result.v1")["value"] == 1.0
    with pytest.raises(schemas.SchemaError) as refused:
        schemas.decode(json.dumps(record).replace("1.0", number).encode(), "lab-result.v1")
    assert refused.value.field == "(record)" and number.lstrip("-") in refused.value.message
