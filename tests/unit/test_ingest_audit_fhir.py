"""Ingest audit: FHIR R4 inputs a hospital sends, and what the user must see.

Each test failed before the fix committed with it.
"""
from datetime import datetime, timedelta, timezone

import pytest

from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.fhir import parse_fhir
from samples import bundle_of


def observation(**extra) -> dict:
    resource = {
        "resourceType": "Observation", "id": "anc1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-01-01T08:30:00+01:00",
        "valueQuantity": {"value": 0.4, "unit": "x10^3/uL", "system": "http://unitsofmeasure.org",
                          "code": "10*3/uL"},
    }
    resource.update(extra)
    return resource


def rejected(resource, expected_type=None):
    with pytest.raises(InputRejected) as info:
        parse_fhir(resource, expected_type=expected_type)
    return info.value.rejection


# ---------------------------------------------------------------- time


@pytest.mark.parametrize("name,value", [
    ("effectiveDateTime", "2024-01-01T08:30:00"),
    ("effectiveDateTime", "2024-01-01T08:30"),
    ("effectiveInstant", "2024-01-01T08:30:00.123"),
])
def test_a_time_without_a_timezone_is_refused_naming_the_field(name, value):
    # FHIR: "if hours and minutes are specified, a time zone SHALL be populated". It was read as
    # UTC: a 08:30 draw in New York became 03:30 local, hours off in every time window.
    resource = observation()
    del resource["effectiveDateTime"]
    resource[name] = value
    r = rejected(resource)
    assert (r.code, r.field) == ("bad_timestamp", f"Observation.{name}")
    assert "time zone" in r.reason


def test_a_date_without_a_time_is_still_accepted():
    [anc] = parse_fhir(observation(effectiveDateTime="2024-01-01"))
    assert anc.collected_at == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_period_start_without_timezone_is_refused():
    resource = observation(effectivePeriod={"start": "2024-01-01T08:30:00"})
    del resource["effectiveDateTime"]
    r = rejected(resource)
    assert r.field == "Observation.effectivePeriod.start"


def test_time_with_offset_is_kept():
    [anc] = parse_fhir(observation())
    assert anc.collected_at == datetime(2024, 1, 1, 8, 30, tzinfo=timezone(timedelta(hours=1)))


# ---------------------------------------------------------------- subject


def test_subject_referring_to_a_contained_patient_uses_its_identifier():
    resource = observation(
        subject={"reference": "#pat"},
        contained=[{"resourceType": "Patient", "id": "pat", "birthDate": "2023-05-01",
                    "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN77"}]}])
    [anc] = parse_fhir(resource)
    assert (anc.patient_id, anc.assigning_authority) == ("MRN77", "urn:oid:1.2.36.146.595.217.0.1")
    assert anc.birth_date == "2023-05-01" and anc.value == 400


def test_contained_patient_without_identifier_is_refused_with_the_reason():
    resource = observation(subject={"reference": "#pat"},
                           contained=[{"resourceType": "Patient", "id": "pat"}])
    r = rejected(resource)
    assert (r.code, r.field) == ("missing_subject", "Observation.subject")
    assert "contained Patient" in r.reason and "identifier" in r.reason


def test_reference_to_a_missing_contained_resource_is_refused_with_the_reason():
    r = rejected(observation(subject={"reference": "#nobody"}))
    assert (r.code, r.field) == ("missing_subject", "Observation.subject")
    assert "contained" in r.reason


def test_contained_patient_inside_a_bundle_names_the_entry():
    resource = observation(subject={"reference": "#pat"},
                           contained=[{"resourceType": "Patient", "id": "pat"}])
    r = rejected(bundle_of(resource))
    assert r.field == "Bundle.entry[0].resource.Observation.subject"


# ---------------------------------------------------------------- value


@pytest.mark.parametrize("comparator", ["~", "<<", "less than", 5])
def test_an_invalid_comparator_is_refused_naming_the_field(comparator):
    # FHIR Quantity.comparator is one of < <= >= > ad; anything else was copied into the
    # original value ("~0.4") and the number used as if exact.
    resource = observation()
    resource["valueQuantity"]["comparator"] = comparator
    r = rejected(resource)
    assert r.field == "Observation.valueQuantity.comparator"
    assert "comparator" in r.reason


@pytest.mark.parametrize("comparator", ["<", "<=", ">=", ">", "ad"])
def test_valid_comparators_are_kept_in_the_original_value(comparator):
    resource = observation()
    resource["valueQuantity"]["comparator"] = comparator
    [anc] = parse_fhir(resource)
    assert (anc.value, anc.original_value) == (400, f"{comparator}0.4")


def test_a_partial_date_is_refused_as_imprecise_not_as_not_a_datetime():
    r = rejected(observation(effectiveDateTime="2024-01"))
    assert (r.code, r.field) == ("bad_timestamp", "Observation.effectiveDateTime")
    assert "day" in r.reason


# ---------------------------------------------------------------- versions in one Bundle


def test_a_preliminary_and_its_final_in_one_bundle_are_both_published():
    # A lab batches the preliminary 400 and the final 300 of one Observation: the final was lost
    # (the first version was used, the second dropped), so the patient stayed at the preliminary.
    preliminary = observation(status="preliminary", issued="2024-01-01T09:00:00+01:00")
    final = observation(status="final", issued="2024-01-01T10:00:00+01:00",
                        valueQuantity={"value": 0.3, "unit": "x10^3/uL", "code": "10*3/uL",
                                       "system": "http://unitsofmeasure.org"})
    events = parse_fhir(bundle_of(preliminary, final, kind="batch"))
    assert [(e.status, e.value) for e in events] == [("P", 400), ("F", 300)]
    assert events[0].observation_id == events[1].observation_id
    assert events[0].event_id != events[1].event_id
    # the engine keeps the final, in either arrival order (tests/integration/test_ingest_fhir.py
    # posts the Bundle to a running ingest)
    from neutrowatch.detection import PatientState, step
    state = PatientState.empty()
    for event in reversed(events):
        state, _ = step(state, event)
    assert [(o.st, o.v) for o in state.anc] == [("F", 300)]


def test_versions_of_one_input_to_a_derived_count_each_give_a_count():
    def part(code, value, unit, rid, status="final", issued="2024-01-01T09:00:00+01:00"):
        return observation(id=rid, status=status, issued=issued,
                           code={"coding": [{"system": "http://loinc.org", "code": code}]},
                           valueQuantity={"value": value, "unit": unit, "code": unit,
                                          "system": "http://unitsofmeasure.org"},
                           specimen={"reference": "Specimen/s1"})
    bundle = bundle_of(part("6690-2", 2.0, "10*3/uL", "wbc", "preliminary"),
                       part("770-8", 20, "%", "neut"),
                       part("6690-2", 1.5, "10*3/uL", "wbc", "final", "2024-01-01T10:00:00+01:00"))
    [first, second] = parse_fhir(bundle)
    assert (first.status, first.value, second.status, second.value) == ("P", 400, "F", 300)
    assert first.observation_id == second.observation_id


def test_the_same_version_twice_in_a_bundle_is_one_event():
    assert len(parse_fhir(bundle_of(observation(), observation()))) == 1


# ---------------------------------------------------------------- DELETE entries


def delete_entry(resource: dict | None, url: str = "Observation/anc1") -> dict:
    entry = {"request": {"method": "DELETE", "url": url}}
    if resource is not None:
        entry["resource"] = resource
    return entry


def test_a_delete_with_its_resource_is_a_deletion_not_a_new_result():
    # A transaction DELETE of the 400 result was ingested as a new final 400.
    posted = parse_fhir(observation())
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [delete_entry(observation())]}
    [deletion] = parse_fhir(bundle)
    assert deletion.status == "D" and deletion.value is None
    assert deletion.observation_id == posted[0].observation_id
    # the engine withdraws the result
    from neutrowatch.detection import PatientState, step
    state, _ = step(PatientState.empty(), posted[0])
    state, _ = step(state, deletion)
    assert [(o.st, o.v) for o in state.anc] == [("D", None)]


def test_a_delete_of_an_administration_is_entered_in_error():
    admin = {"resourceType": "MedicationAdministration", "id": "adm1", "status": "completed",
             "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc",
                                                       "code": "J06BA02"}]},
             "subject": {"reference": "Patient/p1"},
             "effectiveDateTime": "2024-01-01T08:30:00+01:00"}
    [given] = parse_fhir(admin)
    [deleted] = parse_fhir({"resourceType": "Bundle", "type": "batch",
                            "entry": [delete_entry(admin, "MedicationAdministration/adm1")]})
    assert deleted.status == "entered-in-error"
    assert deleted.administration_id == given.administration_id


@pytest.mark.parametrize("url", ["Observation/123", "Observation?identifier=urn:lab|99",
                                 "https://fhir.example/Observation/123/_history/2"])
def test_a_delete_by_url_alone_is_refused_naming_the_entry(url):
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": observation(id="other")}, delete_entry(None, url)]}
    r = rejected(bundle)
    assert (r.code, r.field) == ("unsupported_delete", "Bundle.entry[1].request")
    assert "cannot be identified" in r.reason


def test_a_delete_of_an_untracked_resource_is_ignored():
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": observation()}, delete_entry(None, "Patient/p9")]}
    [anc] = parse_fhir(bundle)
    assert anc.status == "F"


def test_a_delete_of_one_input_of_a_derived_count_is_refused_alone_and_applied_with_the_others():
    def part(code, value, unit, rid):
        return observation(id=rid, code={"coding": [{"system": "http://loinc.org", "code": code}]},
                           valueQuantity={"value": value, "unit": unit, "code": unit,
                                          "system": "http://unitsofmeasure.org"},
                           specimen={"reference": "Specimen/s1"})
    wbc, neut = part("6690-2", 2.0, "10*3/uL", "wbc"), part("770-8", 20, "%", "neut")
    [derived] = parse_fhir(bundle_of(wbc, neut))
    alone = {"resourceType": "Bundle", "type": "batch", "entry": [delete_entry(wbc, "Observation/wbc")]}
    r = rejected(alone)
    assert (r.code, r.field) == ("unsupported_delete", "Bundle.entry[0].request")
    both = {"resourceType": "Bundle", "type": "batch",
            "entry": [delete_entry(wbc, "Observation/wbc"), {"resource": neut}]}
    [deleted] = parse_fhir(both)
    assert (deleted.status, deleted.observation_id) == ("D", derived.observation_id)
