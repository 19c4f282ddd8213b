"""Parsers never fail with anything but InputRejected, whatever they are given."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.fhir import parse_fhir
from neutrowatch.parsing.hl7v2 import build_ack, parse_hl7, read_header, split_messages
from samples import FHIR_ALL, HL7_ALL, SIMHOSPITAL_CODES, fhir, hl7_text

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _hl7_never_crashes(text):
    try:
        parse_hl7(text, SIMHOSPITAL_CODES)
    except InputRejected as exc:
        assert exc.rejection.code and exc.rejection.reason
        try:
            header = read_header(text)
        except InputRejected:
            header = None
        build_ack(header, "AE", exc.rejection, "X", "20240101")


def _fhir_never_crashes(resource):
    try:
        parse_fhir(resource, SIMHOSPITAL_CODES)
    except InputRejected as exc:
        assert exc.rejection.code and exc.rejection.reason


@FAST
@given(st.text())
def test_arbitrary_text(text):
    _hl7_never_crashes(text)
    split_messages(text)


@FAST
@given(st.binary())
def test_arbitrary_bytes(data):
    _hl7_never_crashes(data)
    split_messages(data)


_DELIMS = st.sampled_from(list("|^~\\&\r\n") + ["", "X", "-1", "1e400", "NaN", "20240101", "ORU^R01"])


@FAST
@given(st.sampled_from(HL7_ALL), st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 40), _DELIMS),
                                          max_size=6))
def test_mutated_real_hl7(name, edits):
    text = hl7_text(name)
    for position, length, insert in edits:
        position %= len(text) + 1
        text = text[:position] + insert + text[position + length:]
    _hl7_never_crashes(text)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
_KEYS = ["resourceType", "type", "entry", "resource", "status", "code", "coding", "system", "subject",
         "reference", "identifier", "value", "valueQuantity", "unit", "effectiveDateTime",
         "effectivePeriod", "start", "specimen", "result", "hasMember", "medicationCodeableConcept",
         "medicationReference", "dosage", "dose", "contained", "fullUrl", "id"]


@FAST
@given(_JSON)
def test_arbitrary_json(value):
    _fhir_never_crashes(value)


@FAST
@given(st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=8),
       st.sampled_from(["Observation", "MedicationAdministration", "Bundle", "Patient", 3]))
def test_arbitrary_resource_shapes(value, rtype):
    _fhir_never_crashes({**value, "resourceType": rtype})


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@FAST
@given(st.sampled_from(FHIR_ALL), st.data())
def test_mutated_real_fhir(name, data):
    resource = fhir(name)
    paths = [p for p in _paths(resource) if p]
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths))
        parent = resource
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = data.draw(_JSON)
        except (KeyError, IndexError, TypeError):
            continue
    _fhir_never_crashes(json.loads(json.dumps(resource, allow_nan=True)))
