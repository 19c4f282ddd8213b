"""Canonical events: what ingest puts on Kafka and what detection consumes.

Pure data, standard library only. ``to_record`` / ``from_record`` give the JSON shape that
schemas/*.v1.schema.json describe; the schemas are checked at the serializer edge
(neutrowatch.schemas), never here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

Analyte = Literal["anc", "body_temperature"]
Provenance = Literal["direct", "derived"]
ResultStatus = Literal["P", "F", "C", "X", "D"]
Comparator = Literal["<", "<=", ">", ">="]
COMPARATORS: frozenset[str] = frozenset({"<", "<=", ">", ">="})
AdministrationStatus = Literal["completed", "in-progress", "not-done", "entered-in-error", "stopped"]

# A later status of the same observation replaces an earlier one; deletion/cancellation wins.
STATUS_RANK: dict[str, int] = {"P": 0, "F": 1, "C": 2, "X": 3, "D": 3}
RETRACTING_STATUSES = frozenset({"X", "D"})

UNIT_FOR_ANALYTE: dict[str, str] = {"anc": "cells/uL", "body_temperature": "Cel"}


@dataclass(frozen=True)
class Source:
    """Where an event came from: enough to trace it, no patient data."""

    type: Literal["hl7v2", "fhir", "canonical"]
    sending_application: str | None = None
    sending_facility: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class Coding:
    code: str
    system: str | None = None
    display: str | None = None


@dataclass(frozen=True)
class Component:
    """One reported input to a derived value (WBC, neutrophils %, bands %, ...), as reported."""

    role: Literal["wbc", "neutrophils_percent", "bands_percent", "neutrophils_fraction",
                  "anc_segmented", "bands_absolute"]
    code: str
    value: float
    unit: str


@dataclass(frozen=True)
class Location:
    """Where the patient is, when the feed says (routing input for notify)."""

    ward: str | None = None
    service: str | None = None
    facility: str | None = None


@dataclass(frozen=True)
class LabResult:
    """A normalised ANC (cells/uL) or body temperature (degC) for one specimen/time."""

    observation_id: str  # stable across versions (P -> F -> C) of one result
    event_id: str  # unique for this version of the result
    patient_id: str
    assigning_authority: str | None
    analyte: Analyte
    value: float | None  # None only for status X/D
    unit: str  # canonical unit of the analyte
    status: ResultStatus
    collected_at: datetime  # specimen collection time, timezone-aware
    source: Source
    provenance: Provenance = "direct"
    original_value: str | None = None
    original_unit: str | None = None
    code: Coding | None = None
    components: tuple[Component, ...] = ()
    specimen_id: str | None = None
    reported_at: datetime | None = None
    location: Location | None = None
    birth_date: str | None = None  # YYYY-MM-DD, for age-aware grade profiles
    # the value is a bound, not a measurement: "<" for a count reported as "<0.1 x10^3/uL"
    # (value 100: the true count is below 100), "<=", ">" or ">="; None when exact
    comparator: Comparator | None = None
    # when ingest handed the record to Kafka (the record's optional ``ingested_at``): which of two
    # versions of equal status and reported_at was received later; not part of the identity
    ingested_at: datetime | None = field(default=None, compare=False)

    @property
    def patient_key(self) -> str:
        return patient_key(self.patient_id, self.assigning_authority)

    def to_record(self) -> dict[str, Any]:
        return _record(self, "lab-result", collected_at=_iso(self.collected_at),
                       reported_at=_iso(self.reported_at), ingested_at=_iso(self.ingested_at))

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "LabResult":
        return cls(
            observation_id=rec["observation_id"],
            event_id=rec["event_id"],
            patient_id=rec["patient_id"],
            assigning_authority=rec.get("assigning_authority"),
            analyte=rec["analyte"],
            value=rec.get("value"),
            unit=rec["unit"],
            status=rec["status"],
            collected_at=_dt(rec["collected_at"]),
            source=Source(**rec["source"]),
            provenance=rec.get("provenance", "direct"),
            original_value=rec.get("original_value"),
            original_unit=rec.get("original_unit"),
            code=Coding(**rec["code"]) if rec.get("code") else None,
            components=tuple(Component(**c) for c in rec.get("components") or ()),
            specimen_id=rec.get("specimen_id"),
            reported_at=_dt(rec["reported_at"]) if rec.get("reported_at") else None,
            location=Location(**rec["location"]) if rec.get("location") else None,
            birth_date=rec.get("birth_date"),
            comparator=rec.get("comparator"),
            ingested_at=_dt(rec["ingested_at"]) if rec.get("ingested_at") else None,
        )


@dataclass(frozen=True)
class Dose:
    value: float
    unit: str  # as given: g, mg, g/kg, mg/kg, ...
    mg_per_kg: float | None = None  # normalised when the unit is per kg
    mg: float | None = None  # normalised when the unit is a mass


@dataclass(frozen=True)
class MedicationAdministration:
    administration_id: str  # stable across updates of one administration
    event_id: str
    patient_id: str
    assigning_authority: str | None
    medication: Coding
    drug_class: str | None  # "ivig", "gcsf", "rituximab", ... (neutrowatch.domain.medications)
    started_at: datetime
    status: AdministrationStatus
    source: Source
    ended_at: datetime | None = None
    dose: Dose | None = None
    location: Location | None = None

    @property
    def patient_key(self) -> str:
        return patient_key(self.patient_id, self.assigning_authority)

    def to_record(self) -> dict[str, Any]:
        return _record(self, "medication-administration", started_at=_iso(self.started_at),
                       ended_at=_iso(self.ended_at))

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "MedicationAdministration":
        return cls(
            administration_id=rec["administration_id"],
            event_id=rec["event_id"],
            patient_id=rec["patient_id"],
            assigning_authority=rec.get("assigning_authority"),
            medication=Coding(**rec["medication"]),
            drug_class=rec.get("drug_class"),
            started_at=_dt(rec["started_at"]),
            status=rec["status"],
            source=Source(**rec["source"]),
            ended_at=_dt(rec["ended_at"]) if rec.get("ended_at") else None,
            dose=Dose(**rec["dose"]) if rec.get("dose") else None,
            location=Location(**rec["location"]) if rec.get("location") else None,
        )


@dataclass(frozen=True)
class Rejection:
    """Why an input cannot be used: a machine code, a sentence, and the field at fault."""

    code: str  # e.g. "unknown_unit", "missing_patient_id", "not_hl7"
    reason: str  # one sentence, no patient values unless the setting allows
    field: str | None = None  # "OBX[3]-6", "Observation.effectiveDateTime"


@dataclass(frozen=True)
class DeadLetter:
    received_at: datetime
    source: Source
    rejection: Rejection
    raw: str  # the input as received (decoded text, or base64 when not text)
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    patient_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        return _drop_none({
            "schema": "neutrowatch.dead-letter.v1",
            "received_at": _iso(self.received_at),
            "source": asdict(self.source),
            "reason_code": self.rejection.code,
            "reason": self.rejection.reason,
            "field": self.rejection.field,
            "raw": self.raw,
            "raw_encoding": self.raw_encoding,
            "patient_id": self.patient_id,
        })


Event = LabResult | MedicationAdministration


def patient_key(patient_id: str, assigning_authority: str | None) -> str:
    """The Kafka key and state key of a patient: ``authority|id`` (or the bare id)."""
    return f"{assigning_authority}|{patient_id}" if assigning_authority else patient_id


def with_ingested_at(record: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The record stamped with the time ingest hands it to Kafka (optional ``ingested_at``: the
    start of the end-to-end latency the monitor measures; not part of the event's identity)."""
    return {**record, "ingested_at": _iso(at)}


def event_from_record(rec: dict[str, Any]) -> Event:
    if rec.get("schema") == "neutrowatch.medication-administration.v1":
        return MedicationAdministration.from_record(rec)
    return LabResult.from_record(rec)


def _record(obj: Any, name: str, **overrides: Any) -> dict[str, Any]:
    rec = {"schema": f"neutrowatch.{name}.v1", **asdict(obj), **overrides}
    rec["patient_key"] = obj.patient_key
    return _drop_none(rec)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


__all__ = [
    "Analyte", "COMPARATORS", "Comparator", "Component", "Coding", "DeadLetter", "Dose", "Event", "LabResult", "Location",
    "MedicationAdministration", "Rejection", "RETRACTING_STATUSES", "STATUS_RANK", "Source",
    "UNIT_FOR_ANALYTE", "event_from_record", "patient_key", "with_ingested_at",
]
