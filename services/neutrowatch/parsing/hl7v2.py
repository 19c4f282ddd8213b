"""HL7 v2 (2.3 - 2.5.1) ORU^R01 results and RAS^O17 administrations -> canonical events.

An ORU^R01 is judged result by result: every readable count and temperature becomes an event,
and each observation the product tracks but cannot read is a problem (``Hl7Result.problems``,
naming its OBX), never silently dropped. An ANC is not derived from a specimen one of whose
inputs could not be read (it would be computed without it); a directly reported ANC is used
whatever else the specimen holds. Observations the product does not track are ignored. A problem
with the message itself (header, type, a RAS^O17 administration) rejects it whole.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo

from neutrowatch.domain.codes import DEFAULT_CODES, CodeMap
from neutrowatch.domain.events import (Coding, Event, LabResult, Location, MedicationAdministration,
                                       Rejection, Source, patient_key)
from neutrowatch.domain.ids import stable_id
from neutrowatch.domain.medications import classify, normalise_dose
from neutrowatch.domain.specimens import Part, anc_from_parts, check_plausible
from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.hl7_ack import build_ack
from neutrowatch.parsing.hl7_text import (Hl7Header, Seg, decode, normalise, read_header,
                                          segments, split_messages)
from neutrowatch.parsing.timestamps import hl7_date, hl7_offset, parse_hl7_timestamp
from neutrowatch.parsing.values import (canonical, combined_comparator, comparator_of,
                                        parse_number)

SUPPORTED_TYPES = ("ORU^R01", "ORU", "RAS^O17")
_STATUS = {"P": "P", "R": "P", "S": "P", "F": "F", "U": "F", "C": "C", "X": "X", "D": "D", "W": "D"}
_PENDING = frozenset({"I", "O", "N"})
_QUANTITY_TYPES = frozenset({"NM", "SN", "ST", ""})
_ADMIN_STATUS = {"CP": "completed", "PA": "completed", "": "completed", "RE": "not-done",
                 "NA": "not-done"}


@dataclass(frozen=True)
class Hl7Result:
    header: Hl7Header
    events: tuple[Event, ...]
    patient_id: str | None
    problems: tuple[Rejection, ...] = ()  # tracked observations that could not be used


@dataclass
class _Patient:
    patient_id: str | None = None
    authority: str | None = None
    birth_date: str | None = None
    location: Location | None = None

    @property
    def key(self) -> str | None:
        return patient_key(self.patient_id, self.authority) if self.patient_id else None


@dataclass
class _Group:
    patient: _Patient
    obr: Seg | None = None
    spm: Seg | None = None
    obxs: list[Seg] = field(default_factory=list)


def _time(seg: Seg | None, index: int, zone: tzinfo, component: int = 1) -> datetime | None:
    """A timestamp field; a time without an offset is in ``zone`` (the sender's, from MSH-7)."""
    if seg is None:
        return None
    text = seg.get(index, 1, component)
    if not text:
        return None
    value = parse_hl7_timestamp(text, zone)
    if value is None:
        label = seg.label(index)
        raise InputRejected("bad_timestamp", f"{label} is not an HL7 timestamp (YYYYMMDD[HHMM[SS]][+ZZZZ])",
                            label)
    return value


def _read_pid(seg: Seg, location: Location | None) -> _Patient:
    """The first PID-3 repetition with an identifier (CX.1); its assigning authority is CX.4's
    namespace id, else its universal id (an OID-only HD such as ``&2.16.840...&ISO``)."""
    birth = hl7_date(seg.get(7))
    for rep in range(1, max(1, seg.repetitions(3)) + 1):
        patient_id = seg.get(3, rep, 1)
        if patient_id:
            authority = seg.get(3, rep, 4, 1) or seg.get(3, rep, 4, 2)
            return _Patient(patient_id=patient_id, authority=authority or None, birth_date=birth,
                            location=location)
    return _Patient(birth_date=birth, location=location)


def _read_pv1(seg: Seg) -> Location | None:
    ward, facility, service = seg.get(3, 1, 1), seg.get(3, 1, 4, 1), seg.get(10)
    if not (ward or facility or service):
        return None
    return Location(ward=ward or None, service=service or None, facility=facility or None)


def _require_patient(patient: _Patient) -> tuple[str, str]:
    if not patient.patient_id:
        raise InputRejected("missing_patient_id", "PID-3 has no patient identifier (CX.1)", "PID-3")
    return patient.patient_id, patient.key or patient.patient_id


def _message_type(header: Hl7Header) -> str:
    kind = header.message_type or ""
    if kind not in SUPPORTED_TYPES:
        raise InputRejected("unsupported_message_type",
                            f"MSH-9 message type {kind or '(empty)'!r} is not supported "
                            f"(expected ORU^R01 or RAS^O17)", "MSH-9")
    return kind


def parse_hl7(text: str | bytes, codes: CodeMap = DEFAULT_CODES,
              default_tz: tzinfo = timezone.utc) -> Hl7Result:
    """Parse one message. Raises InputRejected when nothing in it can be used; otherwise the
    events and the ``problems`` of the tracked observations that could not be.

    A timestamp without a UTC offset is in the sender's zone: MSH-7's offset when MSH-7 states
    one, else ``default_tz`` (the deployment's ``hl7_default_timezone``, e.g.
    ``ZoneInfo("Europe/London")``, whose daylight-saving rules then apply to each time)."""
    text = normalise(decode(text) if isinstance(text, bytes) else text)
    header = read_header(text)
    kind = _message_type(header)
    zone = hl7_offset(header.message_time) or default_tz
    source = Source(type="hl7v2", sending_application=header.sending_application,
                    sending_facility=header.sending_facility, message_id=header.message_id)
    problems: list[Rejection] = []
    if kind == "RAS^O17":
        segs = segments(text, lambda name, _fields: name in _RAS_SEGMENTS)
        events, patient_id = _parse_ras(segs, header, source, zone)
    else:
        comp_sep, rep_sep = text[4:5], text[5:6]
        segs = segments(text, lambda name, fields: name in _ORU_SEGMENTS or (
            name == "OBX" and _maps_to_a_role(fields, comp_sep, rep_sep, codes)))
        events, patient_id = _parse_oru(segs, header, source, codes, zone, problems)
    if problems and not events:  # nothing usable: the message is refused, naming the first problem
        first = problems[0]
        raise InputRejected(first.code, first.reason, first.field)
    return Hl7Result(header=header, events=tuple(events), patient_id=patient_id,
                     problems=tuple(dict.fromkeys(problems)))


_ORU_SEGMENTS = frozenset({"PID", "PV1", "OBR", "SPM"})
_RAS_SEGMENTS = frozenset({"PID", "PV1", "ORC", "RXA"})


def _maps_to_a_role(fields: list[str], comp_sep: str, rep_sep: str, codes: CodeMap) -> bool:
    """Cheap look at OBX-3 (first repetition, code and alternate code) before any parsing."""
    if len(fields) < 4:
        return False
    comps = fields[3].split(rep_sep)[0].split(comp_sep) + [""] * 6
    return codes.first_role([(comps[2], comps[0]), (comps[5], comps[3])]) is not None


# ---------------------------------------------------------------- ORU^R01


def _groups(segs: list[Seg]) -> tuple[list[_Group], str | None]:
    patient, groups, first_id = _Patient(), [], None
    current: _Group | None = None
    for seg in segs:
        if seg.name == "PID":
            patient = _read_pid(seg, None)
            first_id = first_id or patient.patient_id
            current = None
        elif seg.name == "PV1":
            patient.location = _read_pv1(seg)
        elif seg.name == "OBR":
            current = _Group(patient=patient, obr=seg)
            groups.append(current)
        elif seg.name == "OBX":
            if current is None:
                current = _Group(patient=patient)
                groups.append(current)
            current.obxs.append(seg)
        elif seg.name == "SPM" and current is not None and current.spm is None:
            current.spm = seg
    return groups, first_id


# "10^3/uL" sent without escaping '^' arrives as identifier "10" and text "3/uL".
_SPLIT_POWER = re.compile(r"^\s*[xX×]?\s*10\s*$")
_SPLIT_EXPONENT = re.compile(r"^\s*\d{1,2}\s*/")


def _units(obx: Seg) -> list[str]:
    """OBX-6 candidates: the identifier, then the alternate identifier. An identifier that is
    only "10" (or "x10") followed by a text "3/uL" is one unit whose '^' the sender did not
    escape: it is read whole ("10^3/uL"), never as the unit "10"."""
    first, text = obx.get(6, 1, 1), obx.get(6, 1, 2)
    if _SPLIT_POWER.match(first) and _SPLIT_EXPONENT.match(text):
        first = f"{first}^{text}"
    return [first, obx.get(6, 1, 4)]


def _found(obx: Seg, codes: CodeMap) -> tuple[str, int] | None:
    """(role, 0 for OBX-3's code or 1 for its alternate) of a tracked observation, else None."""
    return codes.first_role([(obx.get(3, 1, 3), obx.get(3, 1, 1)), (obx.get(3, 1, 6), obx.get(3, 1, 4))])


def _part(obx: Seg, group: _Group, codes: CodeMap, zone: tzinfo) -> Part | None:
    found = _found(obx, codes)
    if found is None:
        return None
    role, index = found
    value_type = obx.get(2).upper()
    base = 3 * index
    code = Coding(code=obx.get(3, 1, base + 1), system=obx.get(3, 1, base + 3) or None,
                  display=obx.get(3, 1, base + 2) or None)
    raw_status = obx.get(11).upper()
    if value_type == "SN":
        comps = [obx.get(5, 1, c) for c in (1, 2, 3, 4)]
        raw_value = "".join(comps[:2]) if not (comps[2] or comps[3]) else "".join(comps)
    else:
        raw_value = obx.get(5)
    if raw_status in _PENDING:
        return None
    status = _STATUS.get(raw_status)
    if status in ("X", "D"):
        raw_value = ""  # cancelled or deleted: whatever the value field holds, there is no value
    elif value_type not in _QUANTITY_TYPES:
        label = obx.label(2)
        raise InputRejected("non_numeric_value", f"{label} value type {value_type!r} cannot carry the "
                            f"{code.code} result (a count or temperature is NM, SN or ST)", label)
    elif not raw_value:
        label, sent = obx.label(5), obx.raw(5)
        if sent:
            raise InputRejected("non_numeric_value", f"{label} {sent!r} for the {code.code} result is "
                                "not a number", label)
        raise InputRejected("missing_value", f"{label} has no value for the {code.code} result "
                            "(the message may be cut short)", label)
    elif status is None:
        label = obx.label(11)
        raise InputRejected("unknown_result_status",
                            f"{label} result status {raw_status or '(empty)'!r} is not one of P, F, C, X, D",
                            label)
    # The specimen collection time: SPM-17 names it; OBR-7 is it for a specimen-based order;
    # OBX-14 should be, but many labs put the analysis time there (LAB-ORU-2: OBX-14 08:30,
    # after the lab received a tube drawn at 05:35), so it is the last resort.
    # Each present field must be a timestamp, whichever is used.
    at_obx, at_obr, at_spm = _time(obx, 14, zone), _time(group.obr, 7, zone), _time(group.spm, 17, zone)
    collected = at_spm or at_obr or at_obx
    if collected is None:
        raise InputRejected("missing_collection_time",
                            f"SPM-17, OBR-7 and {obx.label(14)} give no specimen collection time "
                            f"for the {code.code} result", "OBR-7")
    value = number = unit = None
    if status not in ("X", "D"):
        label = obx.label(5)
        if value_type == "SN":
            if comps[2] or comps[3]:
                number = parse_number("x", label, code, role)  # ranges and ratios are not a value
            number = parse_number(comps[1], label, code, role)
        else:
            number = parse_number(raw_value, label, code, role)
        value, unit = canonical(role, number, _units(obx), obx.label(6), code)
    reported = None
    if group.obr is not None:
        reported = parse_hl7_timestamp(group.obr.get(22), zone)
    return Part(role=role, value=value, status=status, code=code, collected_at=collected,
                value_field=obx.label(5), reported_number=number,
                original_value=raw_value or None, original_unit=unit or obx.get(6, 1, 1) or None,
                reported_at=reported)


def _specimen_key(group: _Group, part: Part) -> str:
    for seg, index, comp in ((group.spm, 2, 1), (group.obr, 3, 1), (group.obr, 2, 1)):
        if seg is not None:
            value = seg.get(index, 1, comp, 1)
            if value:
                return value
    return "at:" + part.collected_at.isoformat()


def _parse_oru(segs: list[Seg], header: Hl7Header, source: Source, codes: CodeMap, zone: tzinfo,
               problems: list[Rejection]) -> tuple[list[Event], str | None]:
    groups, first_id = _groups(segs)
    unreadable: set[int] = set()  # groups (id) with a count input that could not be read
    buckets: dict[tuple[str, str], tuple[_Group, list[Part]]] = {}
    events: list[Event] = []
    app, facility = header.sending_application, header.sending_facility

    def result(group: _Group, spec: str, analyte: str, obs_id: str, **kw) -> LabResult:
        pid = group.patient
        value, status = kw["value"], kw["status"]
        bound = (kw["comparator"],) if kw.get("comparator") else ()  # "<0.1" is not "0.1"
        return LabResult(
            observation_id=obs_id,
            event_id=stable_id(obs_id, status, value, header.message_id, *bound),
            patient_id=pid.patient_id or "", assigning_authority=pid.authority, analyte=analyte,  # type: ignore[arg-type]
            unit="cells/uL" if analyte == "anc" else "Cel", source=source, specimen_id=spec,
            location=pid.location, birth_date=pid.birth_date, **kw)

    for group in groups:
        for obx in group.obxs:
            try:
                part = _part(obx, group, codes, zone)
                if part is None:
                    continue
                _, key = _require_patient(group.patient)
                check_plausible(part)
            except InputRejected as exc:
                problems.append(exc.rejection)
                if (_found(obx, codes) or ("",))[0] not in ("anc_direct", "body_temperature"):
                    unreadable.add(id(group))  # an input of a derivation
                continue
            spec = _specimen_key(group, part)
            if part.role == "body_temperature":
                obs_id = stable_id("hl7", app, facility, key, spec, "body_temperature",
                                   part.collected_at.isoformat())
                events.append(result(group, spec, "body_temperature", obs_id, value=part.value,
                                     status=part.status, collected_at=part.collected_at,
                                     original_value=part.original_value,
                                     original_unit=part.original_unit, code=part.code,
                                     reported_at=part.reported_at,
                                     comparator=_comparator(part.value, [part])))
                continue
            buckets.setdefault((key, spec), (group, []))[1].append(part)
    for (key, spec), (group, parts) in buckets.items():
        if id(group) in unreadable and not any(p.role in ("anc_direct", "anc_segmented") for p in parts):
            problems.append(Rejection("anc_not_derived", f"no neutrophil count derived for specimen "
                                      f"{spec}: one of its inputs could not be read",
                                      parts[0].value_field))
            continue
        try:
            finding = anc_from_parts(parts)
        except InputRejected as exc:
            problems.append(exc.rejection)
            continue
        if finding is None:
            continue
        direct = finding.provenance == "direct"
        obs_id = stable_id("hl7", app, facility, key, spec, "anc")
        events.append(result(
            group, spec, "anc", obs_id, value=finding.value, status=finding.status,
            collected_at=finding.collected_at, provenance=finding.provenance,
            original_value=finding.anchor.original_value if direct else None,
            original_unit=finding.anchor.original_unit if direct else None,
            code=finding.anchor.code if direct else None, components=finding.components,
            reported_at=finding.reported_at,
            comparator=_comparator(finding.value, finding.parts)))
    return events, first_id


def _comparator(value: float | None, parts) -> str | None:
    """"<" for "<0.1" (OBX-5 NM/ST text, or SN "<^0.1"): the value is a bound, not a count."""
    return None if value is None else combined_comparator([p.original_value for p in parts])


# ---------------------------------------------------------------- RAS^O17


def _dose(rxa: Seg):
    amount, unit = rxa.get(6), rxa.get(7, 1, 1)
    if not amount:
        return None
    code = Coding(code="RXA-6")
    try:
        value = parse_number(amount, "RXA-6", code, "dose")
    except InputRejected:
        raise InputRejected("bad_dose", "RXA-6 administered amount is not a number", "RXA-6") from None
    if value == 0:
        return None
    if value < 0:
        raise InputRejected("bad_dose", "RXA-6 administered amount is negative", "RXA-6")
    if not unit:
        raise InputRejected("bad_dose", "RXA-7 administered units are missing for the RXA-6 amount",
                            "RXA-7")
    return normalise_dose(value, unit)


def _parse_ras(segs: list[Seg], header: Hl7Header, source: Source,
               zone: tzinfo) -> tuple[list[Event], str | None]:
    patient, first_id, order_id = _Patient(), None, None
    events: list[Event] = []
    for seg in segs:
        if seg.name == "PID":
            patient = _read_pid(seg, None)
            first_id = first_id or patient.patient_id
        elif seg.name == "PV1":
            patient.location = _read_pv1(seg)
        elif seg.name == "ORC":
            order_id = seg.get(3, 1, 1) or seg.get(2, 1, 1) or None
        elif seg.name == "RXA":
            events.append(_administration(seg, patient, order_id, header, source, zone))
    return events, first_id


def _administration(rxa: Seg, patient: _Patient, order_id: str | None, header: Hl7Header,
                    source: Source, zone: tzinfo) -> MedicationAdministration:
    patient_id, key = _require_patient(patient)
    started = _time(rxa, 3, zone)
    if started is None:
        raise InputRejected("missing_administration_time", "RXA-3 has no administration start time",
                            "RXA-3")
    ended = _time(rxa, 4, zone)
    code = rxa.get(5, 1, 1)
    if not code:
        raise InputRejected("missing_administered_code", "RXA-5 has no administered code", "RXA-5")
    medication = Coding(code=code, system=rxa.get(5, 1, 3) or None, display=rxa.get(5, 1, 2) or None)
    drug_class = classify(medication, rxa.get(5, 1, 5) or None)
    completion = rxa.get(20).upper()
    if completion not in _ADMIN_STATUS:
        raise InputRejected("unknown_administration_status",
                            f"RXA-20 completion status {completion!r} is not one of CP, PA, RE, NA",
                            "RXA-20")
    status = "entered-in-error" if rxa.get(21).upper() == "D" else _ADMIN_STATUS[completion]
    dose = _dose(rxa)
    admin_id = stable_id("hl7", header.sending_application, header.sending_facility, key, order_id,
                         started.isoformat(), code)
    return MedicationAdministration(
        administration_id=admin_id,
        event_id=stable_id(admin_id, status, dose, ended, header.message_id),
        patient_id=patient_id, assigning_authority=patient.authority, medication=medication,
        drug_class=drug_class, started_at=started, status=status, source=source,  # type: ignore[arg-type]
        ended_at=ended, dose=dose, location=patient.location)


__all__ = ["Hl7Header", "Hl7Result", "SUPPORTED_TYPES", "build_ack", "parse_hl7", "read_header",
           "split_messages"]
