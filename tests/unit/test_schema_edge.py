"""The serializer edge refuses records that break their schema, naming the field."""
import json

import pytest

from neutrowatch import schemas
from samples import hl7_text
from neutrowatch.parsing.hl7v2 import parse_hl7

NIST = "fhirconverter__LRI_2.0-NG_CBC_Typ_Message.hl7"


def anc_record() -> dict:
    return parse_hl7(hl7_text(NIST)).events[0].to_record()


def test_a_valid_record_round_trips():
    record = anc_record()
    assert schemas.decode(schemas.encode(record), "lab-result.v1") == record


@pytest.mark.parametrize("change, field", [
    ({"value": -5}, "value"),
    ({"value": 250_000}, "value"),
    ({"unit": "mmol/L"}, "unit"),
    ({"collected_at": "yesterday"}, "collected_at"),
])
def test_a_broken_record_names_its_field(change, field):
    with pytest.raises(schemas.SchemaError) as err:
        schemas.encode({**anc_record(), **change})
    assert err.value.field == field and err.value.schema == "lab-result.v1"


def test_decode_refuses_other_schemas_and_non_json():
    with pytest.raises(schemas.SchemaError, match="expected neutrowatch.medication-administration.v1"):
        schemas.decode(json.dumps(anc_record()).encode(), "medication-administration.v1")
    with pytest.raises(schemas.SchemaError, match="not JSON"):
        schemas.decode(b"\xff{", "lab-result.v1")
