"""FHIR R4 (and R5 spellings) Observation, MedicationAdministration and Bundle -> events.

Rejections name the field as a FHIRPath-like expression, prefixed with
"Bundle.entry[i].resource." inside a Bundle. Observations the product does not track are
ignored; a tracked one that cannot be used rejects the whole resource or Bundle.

Who the patient is (``PatientIdentity``): by default the Patient's logical id of a subject
reference ("Patient/123" -> key "123"); with mode "identifier" a patient identifier (the
Reference's own, else the referenced Patient's, preferring type MR), so that FHIR and HL7 v2
(PID-3 ``authority|MRN``) events of one person share a patient key. An identifier's system becomes
the key's authority through ``systems`` (system URI -> HL7 assigning authority) in either mode;
unmapped, in mode "identifier" "urn:oid:X" -> "X" (as HL7 keys an OID-only authority), else the
system itself.
"""
from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime
from typing import Any, Literal, Mapping

from neutrowatch.domain.codes import DEFAULT_CODES, CodeMap
from neutrowatch.domain.events import (Coding, Event, LabResult, MedicationAdministration, Source,
                                       patient_key)
from neutrowatch.domain.ids import stable_id
from neutrowatch.domain.medications import classify, normalise_dose
from neutrowatch.domain.specimens import Part, anc_from_parts, check_plausible
from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.fhir_refs import EMPTY_INDEX, BundleIndex, as_dict, as_list, as_str
from neutrowatch.parsing.timestamps import parse_fhir_datetime
from neutrowatch.parsing.values import canonical, combined_comparator, describe, parse_number

ResourceKind = Literal["Observation", "MedicationAdministration", "Bundle"]
SUPPORTED = ("Observation", "MedicationAdministration", "Bundle")
BUNDLE_TYPES = ("batch", "transaction", "collection")
_OBS_STATUS = {"registered": "P", "preliminary": "P", "final": "F", "amended": "C",
               "corrected": "C", "cancelled": "X", "entered-in-error": "D"}
_ADMIN_STATUS = {"completed": "completed", "in-progress": "in-progress", "on-hold": "in-progress",
                 "not-done": "not-done", "entered-in-error": "entered-in-error",
                 "stopped": "stopped"}
_BIRTH_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_ZONED = re.compile(r"(Z|[+-]\d{2}:\d{2})$")
_PARTIAL_DATE = re.compile(r"^\d{4}(-\d{2})?$")
_COMPARATORS = frozenset({"<", "<=", ">=", ">", "ad"})
_V2_0203 = ("http://terminology.hl7.org/CodeSystem/v2-0203", "http://hl7.org/fhir/v2/0203")
IdentityMode = Literal["reference", "identifier"]


@dataclasses.dataclass(frozen=True)
class PatientIdentity:
    """How a FHIR subject becomes a patient key (the ``fhir_patient_identity`` and
    ``fhir_identifier_systems`` settings)."""

    mode: IdentityMode = "reference"
    systems: Mapping[str, str] = dataclasses.field(default_factory=dict)  # identifier system -> authority

    def authority(self, system: str | None) -> str | None:
        """The key's authority for an identifier system: as mapped, else (mode identifier) an
        OID without "urn:oid:", else the system. Mode reference keeps an unmapped system as it
        is, so the keys it has always made stay the same."""
        if system is None:
            return None
        if system in self.systems:
            return self.systems[system]
        if self.mode == "identifier" and system.startswith("urn:oid:"):
            return system[len("urn:oid:"):]
        return system


BY_REFERENCE = PatientIdentity()


def resource_kind(resource: Any) -> ResourceKind | None:
    """Which supported resource a parsed JSON value is, or None."""
    if isinstance(resource, dict) and resource.get("resourceType") in SUPPORTED:
        return resource["resourceType"]
    return None


def parse_fhir(resource: Any, codes: CodeMap = DEFAULT_CODES,
               expected_type: str | None = None,
               identity: PatientIdentity = BY_REFERENCE) -> list[Event]:
    """Events from one resource; raises InputRejected for anything it cannot use."""
    if not isinstance(resource, dict):
        raise InputRejected("not_a_resource", "the JSON value is not a FHIR resource (an object)")
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise InputRejected("missing_resource_type", "resourceType is missing", "resourceType")
    if expected_type is not None and rtype != expected_type:
        raise InputRejected("wrong_resource_type",
                            f"resourceType is {rtype[:60]!r} where {expected_type} is expected",
                            "resourceType")
    if rtype not in SUPPORTED:
        raise InputRejected("wrong_resource_type",
                            f"resourceType {rtype[:60]!r} is not Observation, MedicationAdministration "
                            f"or Bundle", "resourceType")
    if rtype == "Bundle":
        return _bundle(resource, codes, identity)
    source = Source(type="fhir")
    if rtype == "Observation":
        found = _observation(resource, "", codes, EMPTY_INDEX, identity)
        if found is None:
            return []
        context, part = found
        if part.role == "body_temperature":
            return [_temperature(context, part, source)]
        return _ancs(context["patient_key"], "single", context, [part], source)
    return [_administration(resource, "", EMPTY_INDEX, source, identity)]


# ---------------------------------------------------------------- Bundle


def _bundle(bundle: dict, codes: CodeMap, identity: PatientIdentity) -> list[Event]:
    kind = bundle.get("type")
    if kind not in BUNDLE_TYPES:
        raise InputRejected("unsupported_bundle_type",
                            f"Bundle.type {str(kind)[:40]!r} is not batch, transaction or collection",
                            "Bundle.type")
    entries, deletes = [], set()
    for index, entry in enumerate(as_list(bundle.get("entry"))):
        resource = as_dict(as_dict(entry).get("resource"))
        if _is_delete(as_dict(entry)):
            if not resource:
                _refuse_bare_delete(as_dict(entry), index)
            deletes.add(index)
        if resource:
            entries.append((index, resource, as_str(as_dict(entry).get("fullUrl"))))
    index_ = BundleIndex(entries)
    source = Source(type="fhir", message_id=as_str(bundle.get("id")))
    events: list[Event] = []
    buckets: dict[tuple[str, str], tuple[dict, list[Part]]] = {}
    deleted: dict[int, int] = {}  # id(part) -> entry of a DELETE that must give a deletion
    for position, resource, _ in entries:
        prefix = f"Bundle.entry[{position}].resource."
        rtype = resource.get("resourceType")
        delete = position in deletes
        if rtype == "MedicationAdministration":
            events.append(_administration(resource, prefix, index_, source, identity, delete))
        elif rtype == "Observation":
            found = _observation(resource, prefix, codes, index_, identity, delete)
            if found is None:
                continue
            context, part = found
            if part.role == "body_temperature":
                events.append(_temperature(context, part, source))
            else:
                group = _group_key(resource, index_, part)
                buckets.setdefault((context["patient_key"], group), (context, []))[1].append(part)
                if delete:
                    deleted[id(part)] = position
    for (key, group), (context, parts) in buckets.items():
        made = _ancs(key, group, context, parts, source)
        if not made:  # a deletion that gives no count: a derived count's input without the others
            for part in parts:
                if id(part) in deleted:
                    _refuse_partial_delete(deleted[id(part)], part)
        events.extend(made)
    return events


def _is_delete(entry: dict) -> bool:
    method = as_dict(entry.get("request")).get("method")
    return isinstance(method, str) and method.strip().upper() == "DELETE"


def _refuse_bare_delete(entry: dict, position: int) -> None:
    """A DELETE without the resource names only a server id ("Observation/123"): which patient's
    result, of which code and collection time, is not known here, so it cannot be applied; and it
    is never a result. A DELETE of something the product does not track is ignored."""
    url = as_str(as_dict(entry.get("request")).get("url")) or ""
    target = url.split("?")[0].rstrip("/").split("/_history/")[0].split("/")
    tracked = ("Observation", "MedicationAdministration")
    if any(name in target[-2:] for name in tracked) or not url:
        field = f"Bundle.entry[{position}].request"
        raise InputRejected(
            "unsupported_delete",
            f"{field} is a DELETE of {url[:80] or '(no url)'!r} without the resource: the result "
            f"to delete cannot be identified (its subject, code and effective time are needed); "
            f"send the resource in the entry, or with status entered-in-error", field)


def _refuse_partial_delete(position: int, part: Part) -> None:
    field = f"Bundle.entry[{position}].request"
    raise InputRejected(
        "unsupported_delete",
        f"{field} deletes the {describe(part.code, part.role)} result, from which a neutrophil "
        f"count is derived with other results of its specimen that are not in the Bundle: the "
        f"count to delete cannot be identified; send those results in the same Bundle", field)


def _group_key(resource: dict, index: BundleIndex, part: Part) -> str:
    for candidate in [resource] + index.ancestors(resource):
        for specimen in _specimen_refs(candidate):
            target = index.resolve(specimen)
            rid = as_str(as_dict(target).get("id")) if target else None
            return f"specimen:Specimen/{rid}" if rid else f"specimen:{specimen}"
    for parent in index.ancestors(resource):
        if parent.get("resourceType") == "DiagnosticReport":
            return f"report:{as_str(parent.get('id')) or id(parent)}"
    return "at:" + part.collected_at.isoformat()


def _specimen_refs(resource: dict) -> list[str]:
    spec = resource.get("specimen")
    items = spec if isinstance(spec, list) else [spec]
    if resource.get("resourceType") == "DiagnosticReport" and len(items) != 1:
        return []  # a report over several specimens does not say which one an Observation used
    return [r for r in (as_str(as_dict(i).get("reference")) for i in items) if r]


# ---------------------------------------------------------------- Observation


def _subject(resource: dict, path: str, index: BundleIndex, identity: PatientIdentity) -> dict:
    subject = as_dict(resource.get("subject"))
    field = f"{path}.subject"
    reference = as_str(subject.get("reference"))
    given = as_dict(subject.get("identifier"))
    given = given if as_str(given.get("value")) else None
    if not reference:
        if given is not None:
            return _identified(given, None, identity)
        raise InputRejected("missing_subject", f"{field} has no Patient reference or identifier", field)
    if reference.startswith("#"):
        target, logical = _contained_patient(resource, reference, field), None
    else:
        target, logical = _referenced_patient(reference, field, index)
    birth = as_str(as_dict(target).get("birthDate")) if target else None
    birth = birth if birth and _BIRTH_DATE.match(birth) else None
    by_identifier = identity.mode == "identifier"
    if logical and not by_identifier:
        return _patient(logical, None, birth)
    chosen = given if by_identifier and given is not None else _patient_identifier(
        as_dict(target), prefer_mr=by_identifier)
    if chosen is not None:
        return _identified(chosen, birth, identity)
    if by_identifier:
        raise InputRejected(
            "missing_patient_identifier",
            f"{field} gives no patient identifier: with the setting fhir_patient_identity=identifier "
            f"a patient is known by an identifier, so an identifier is needed ({field}.identifier, "
            f"or Patient.identifier of the referenced Patient sent in the Bundle or in contained)",
            field)
    raise InputRejected("missing_subject", f"{field} refers to a contained Patient without an "
                        f"identifier (Patient.identifier.value is needed to know who it is)", field)


def _referenced_patient(reference: str, field: str, index: BundleIndex) -> tuple[dict | None, str]:
    """The referenced resource when the Bundle holds it (else None) and the Patient's logical id."""
    target = index.resolve(reference)
    if reference.startswith("urn:uuid:") or reference.startswith("urn:oid:"):
        if target is not None and target.get("resourceType") != "Patient":
            raise InputRejected("missing_subject", f"{field} does not refer to a Patient", field)
        rid = as_str(as_dict(target).get("id")) if target else None
        return target, rid or reference.split(":", 2)[2]
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return target, parts[-1]
    raise InputRejected("missing_subject", f"{field} does not refer to a Patient", field)


def _contained_patient(resource: dict, reference: str, field: str) -> dict:
    """A subject "#id" names a Patient inside ``resource.contained``: it has no id of its own
    outside this resource, so it is known by its identifier (system = assigning authority)."""
    target = next((as_dict(c) for c in as_list(resource.get("contained"))
                   if as_dict(c).get("id") == reference[1:]), None)
    if target is None:
        raise InputRejected("missing_subject",
                            f"{field} refers to contained resource {reference[:40]!r}, which is not "
                            f"in contained", field)
    if target.get("resourceType") != "Patient":
        raise InputRejected("missing_subject", f"{field} does not refer to a Patient", field)
    return target


def _patient_identifier(patient: dict, prefer_mr: bool) -> dict | None:
    """The first Patient.identifier with a value; with ``prefer_mr`` the first of type MR (HL7
    table 0203, the medical record number HL7 v2 PID-3 carries) when there is one."""
    found = [as_dict(i) for i in as_list(patient.get("identifier")) if as_str(as_dict(i).get("value"))]
    if prefer_mr:
        found.sort(key=lambda i: not _is_mr(i))  # stable: the first MR, else the first
    return found[0] if found else None


def _is_mr(identifier: dict) -> bool:
    return any(as_dict(c).get("system") in _V2_0203 and as_dict(c).get("code") == "MR"
               for c in as_list(as_dict(identifier.get("type")).get("coding")))


def _identified(identifier: dict, birth: str | None, identity: PatientIdentity) -> dict:
    authority = identity.authority(as_str(identifier.get("system")))
    return _patient(as_str(identifier.get("value")) or "", authority, birth)


def _patient(patient_id: str, authority: str | None, birth: str | None) -> dict:
    return {"patient_id": patient_id, "authority": authority, "birth_date": birth,
            "patient_key": patient_key(patient_id, authority)}


def _effective(resource: dict, path: str, names: tuple[str, ...]) -> tuple[datetime | None, datetime | None]:
    """(start, end) from the first present effective[x]/occurrence[x] element."""
    for name in names:
        if name not in resource:
            continue
        value = resource[name]
        if name.endswith("Period"):
            period = as_dict(value)
            start = _datetime(period.get("start"), f"{path}.{name}.start")
            end = _datetime(period.get("end"), f"{path}.{name}.end") if "end" in period else None
            return start, end
        return _datetime(value, f"{path}.{name}"), None
    return None, None


def _datetime(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_fhir_datetime(value)
    if parsed is None and isinstance(value, str) and _PARTIAL_DATE.match(value.strip()):
        raise InputRejected("bad_timestamp", f"{field} gives only a year or month; a result needs "
                            f"at least the day it was collected", field)
    if parsed is None:
        raise InputRejected("bad_timestamp", f"{field} is not a FHIR dateTime", field)
    if "T" in value and not _ZONED.search(value.strip()):
        # FHIR: a dateTime with hours and minutes SHALL have a time zone; guessing one (UTC)
        # would move the result by hours.
        raise InputRejected("bad_timestamp", f"{field} has a time but no time zone (Z or +hh:mm "
                            f"is required)", field)
    return parsed


_OBS_EFFECTIVE = ("effectiveDateTime", "effectiveInstant", "effectivePeriod")


def _observation(obs: dict, prefix: str, codes: CodeMap, index: BundleIndex,
                 identity: PatientIdentity, delete: bool = False) -> tuple[dict, Part] | None:
    """``delete``: the Bundle entry is a DELETE of this Observation (as entered-in-error)."""
    path = prefix + "Observation"
    codings = [as_dict(c) for c in as_list(as_dict(obs.get("code")).get("coding"))]
    pairs = [(as_str(c.get("system")), as_str(c.get("code"))) for c in codings]
    found = codes.first_role(pairs)
    if found is None:
        return None
    role, position = found
    chosen = codings[position]
    code = Coding(code=pairs[position][1] or "", system=pairs[position][0],
                  display=as_str(chosen.get("display")))
    status = "D" if delete else _status(obs, path, _OBS_STATUS, "unknown_result_status",
                                         "Observation")
    context = _subject(obs, path, index, identity)
    number = value = unit = original = None
    if status not in ("X", "D"):
        read = _value(obs, path, code, role)
        if read is None:
            return None  # no result yet (e.g. registered)
        number, original, units, unit_field = read
        value, unit = canonical(role, number, units, unit_field, code)
    collected, _ = _effective(obs, path, _OBS_EFFECTIVE)
    for parent in index.ancestors(obs) if collected is None else ():
        ptype = parent.get("resourceType") or "Resource"
        collected, _ = _effective(parent, f"{ptype}", _OBS_EFFECTIVE)
        if collected is not None:
            break
    if collected is None:
        raise InputRejected("missing_effective_time",
                            f"{path}.effective[x] is missing (the specimen collection time)",
                            f"{path}.effective[x]")
    key = _identity(obs)
    part = Part(role=role, value=value, status=status, code=code, collected_at=collected,
                value_field=f"{path}.valueQuantity.value", reported_number=number,
                original_value=original, original_unit=unit,
                reported_at=parse_fhir_datetime(obs.get("issued")), key=key)
    return context, part


def _value(obs: dict, path: str, code: Coding, role: str):
    """(number, original text, candidate units, unit field) or None when there is no value."""
    if "valueQuantity" in obs:
        quantity = as_dict(obs.get("valueQuantity"))
        field = f"{path}.valueQuantity.value"
        raw = quantity.get("value")
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise InputRejected("non_numeric_value",
                                f"{field} for {describe(code, role)} is not a number", field)
        number = parse_number(str(raw), field, code, role) if isinstance(raw, str) else float(raw)
        if not math.isfinite(number):
            raise InputRejected("non_numeric_value",
                                f"{field} for {describe(code, role)} is not a finite number", field)
        comparator = quantity.get("comparator")
        if comparator is not None and comparator not in _COMPARATORS:
            field = f"{path}.valueQuantity.comparator"
            raise InputRejected("bad_comparator", f"{field} is not one of <, <=, >=, >, ad", field)
        comparator = comparator or ""
        unit = as_str(quantity.get("code")) or as_str(quantity.get("unit"))  # UCUM code first
        units = [unit] if unit else []
        return number, f"{comparator}{raw}", units, f"{path}.valueQuantity.unit"
    if "valueString" in obs or "valueInteger" in obs:
        name = "valueString" if "valueString" in obs else "valueInteger"
        raw = obs.get(name)
        parse_number(raw if isinstance(raw, str) else str(raw), f"{path}.{name}", code, role)
        field = f"{path}.valueQuantity.unit"
        raise InputRejected("missing_unit", f"{path}.{name} for {describe(code, role)} carries no "
                            f"unit (a valueQuantity is needed)", field)
    return None


def _identity(resource: dict) -> str | None:
    for identifier in as_list(resource.get("identifier")):
        value = as_str(as_dict(identifier).get("value"))
        if value:
            return f"{as_str(as_dict(identifier).get('system')) or ''}|{value}"
    rid = as_str(resource.get("id"))
    return f"{resource.get('resourceType')}/{rid}" if rid else None


def _lab(context: dict, source: Source, obs_id: str, analyte: str, **kw) -> LabResult:
    bound = (kw["comparator"],) if kw.get("comparator") else ()  # "<0.1" is not "0.1"
    return LabResult(
        observation_id=obs_id, event_id=stable_id(obs_id, kw["status"], kw["value"], *bound),
        patient_id=context["patient_id"], assigning_authority=context["authority"],
        analyte=analyte, unit="cells/uL" if analyte == "anc" else "Cel",  # type: ignore[arg-type]
        source=source, birth_date=context["birth_date"], **kw)


def _temperature(context: dict, part: Part, source: Source) -> LabResult:
    check_plausible(part)
    obs_id = stable_id("fhir", context["patient_key"], "body_temperature",
                       part.key or part.collected_at.isoformat())
    return _lab(context, source, obs_id, "body_temperature", value=part.value, status=part.status,
                collected_at=part.collected_at, original_value=part.original_value,
                original_unit=part.original_unit, code=part.code, reported_at=part.reported_at,
                comparator=_comparator(part.value, [part]))


def _versions(parts: list[Part]) -> list[list[Part]]:
    """One specimen's parts as the successive versions the Bundle sends: a result that comes
    again (same identifier or Observation id: a preliminary then its final) starts a version in
    which it replaces its earlier self and every other result stays, as if each version had come
    in its own request. Nothing is lost; the engine orders the versions (status, then issued)."""
    history: dict[object, list[Part]] = {}
    for n, part in enumerate(parts):
        history.setdefault(part.key if part.key is not None else ("#", n), []).append(part)
    depth = max((len(v) for v in history.values()), default=0)
    return [[v[min(i, len(v) - 1)] for v in history.values()] for i in range(depth)]


def _ancs(key: str, group: str, context: dict, parts: list[Part], source: Source) -> list[Event]:
    """The counts of one specimen (or group), one per version the Bundle sends."""
    events: dict[str, Event] = {}
    for version in _versions(parts):
        event = _anc(key, group, context, version, source)
        if event is not None:
            events.setdefault(event.event_id, event)  # a repeat is one event
    return list(events.values())


def _anc(key: str, group: str, context: dict, parts: list[Part], source: Source) -> LabResult | None:
    finding = anc_from_parts(parts)
    if finding is None:
        return None
    direct = finding.provenance == "direct"
    anchor = finding.anchor
    obs_id = stable_id("fhir", key, "anc", "direct" if direct else "derived",
                       anchor.key or group)
    return _lab(
        context, source, obs_id, "anc", value=finding.value, status=finding.status,
        collected_at=finding.collected_at, provenance=finding.provenance,
        original_value=anchor.original_value if direct else None,
        original_unit=anchor.original_unit if direct else None,
        code=anchor.code if direct else None, components=finding.components,
        reported_at=finding.reported_at, comparator=_comparator(finding.value, finding.parts),
        specimen_id=group.split(":", 1)[1] if group.startswith("specimen:") else None)


def _comparator(value: float | None, parts) -> str | None:
    """valueQuantity.comparator ("<" with value 0.1: the count is below 0.1): a bound, not a
    value; "ad" is not one."""
    return None if value is None else combined_comparator([p.original_value for p in parts])


# ---------------------------------------------------------------- MedicationAdministration

_ADMIN_EFFECTIVE = ("effectiveDateTime", "effectivePeriod", "occurenceDateTime", "occurencePeriod",
                    "occurrenceDateTime", "occurrencePeriod")


def _medication(admin: dict, path: str, index: BundleIndex) -> tuple[Coding, str | None]:
    concept = admin.get("medicationCodeableConcept")
    medication = admin.get("medication")
    if concept is None and isinstance(medication, dict):  # R5 CodeableReference
        concept = medication.get("concept")
        reference = as_dict(medication.get("reference")).get("reference")
    else:
        reference = as_dict(admin.get("medicationReference")).get("reference")
    if concept is None and as_str(reference):
        target = None
        if reference.startswith("#"):
            target = next((c for c in as_list(admin.get("contained"))
                           if as_dict(c).get("id") == reference[1:]), None)
        else:
            target = index.resolve(reference)
        concept = _medication_code(as_dict(target)) if target else None
    concept = as_dict(concept)
    codings = [as_dict(c) for c in as_list(concept.get("coding"))]
    coded = [Coding(code=as_str(c.get("code")) or "", system=as_str(c.get("system")),
                    display=as_str(c.get("display"))) for c in codings if as_str(c.get("code"))]
    if not coded:
        field = f"{path}.medication[x]"
        raise InputRejected("missing_medication",
                            f"{field} has no coded medication (code, or a referenced Medication.code)",
                            field)
    text = as_str(concept.get("text"))
    drug_class = next((k for k in (classify(c) for c in coded) if k), None) or classify(None, text)
    coding = coded[0]
    if coding.display is None and text:
        coding = Coding(code=coding.code, system=coding.system, display=text)
    return coding, drug_class


def _medication_code(medication: dict) -> dict | None:
    """Medication.code, else the first coded ingredient (an uncoded compounded product)."""
    if as_dict(medication.get("code")).get("coding"):
        return as_dict(medication.get("code"))
    for ingredient in as_list(medication.get("ingredient")):
        item = as_dict(ingredient).get("itemCodeableConcept") or as_dict(
            as_dict(ingredient).get("item")).get("concept")
        if as_dict(item).get("coding"):
            return as_dict(item)
    return as_dict(medication.get("code")) or None


def _fhir_dose(admin: dict, path: str):
    dose = as_dict(as_dict(admin.get("dosage")).get("dose"))
    if not dose:
        return None
    field = f"{path}.dosage.dose.value"
    value = dose.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 0:
        raise InputRejected("bad_dose", f"{field} is not a positive number", field)
    unit = as_str(dose.get("code")) or as_str(dose.get("unit"))
    if unit is None:
        field = f"{path}.dosage.dose.unit"
        raise InputRejected("bad_dose", f"{field} is missing", field)
    return normalise_dose(float(value), unit)


def _status(resource: dict, path: str, table: dict[str, str], code: str, noun: str) -> str:
    raw = resource.get("status")
    status = table.get(raw) if isinstance(raw, str) else None
    if status is None:
        raise InputRejected(code, f"{path}.status {str(raw)[:40]!r} is not a known {noun} status",
                            f"{path}.status")
    return status


def _administration(admin: dict, prefix: str, index: BundleIndex, source: Source,
                    identity: PatientIdentity, delete: bool = False) -> MedicationAdministration:
    """``delete``: the Bundle entry is a DELETE of this administration (as entered-in-error)."""
    path = prefix + "MedicationAdministration"
    status = "entered-in-error" if delete else _status(
        admin, path, _ADMIN_STATUS, "unknown_administration_status", "administration")
    context = _subject(admin, path, index, identity)
    medication, drug_class = _medication(admin, path, index)
    started, ended = _effective(admin, path, _ADMIN_EFFECTIVE)
    if started is None:
        raise InputRejected("missing_effective_time",
                            f"{path}.effective[x] is missing (when the medication was given)",
                            f"{path}.effective[x]")
    dose = _fhir_dose(admin, path)
    key = _identity(admin) or f"{started.isoformat()}|{medication.code}"
    admin_id = stable_id("fhir", context["patient_key"], key)
    return MedicationAdministration(
        administration_id=admin_id, event_id=stable_id(admin_id, status, dose, ended),
        patient_id=context["patient_id"], assigning_authority=context["authority"],
        medication=medication, drug_class=drug_class, started_at=started, status=status,  # type: ignore[arg-type]
        source=source, ended_at=ended, dose=dose)


__all__ = ["BUNDLE_TYPES", "BY_REFERENCE", "IdentityMode", "PatientIdentity", "ResourceKind", "SUPPORTED",
           "parse_fhir", "resource_kind"]
