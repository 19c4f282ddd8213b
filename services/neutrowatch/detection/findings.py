"""What a rule concludes before it becomes an Alert: cheap to make on every evaluation.

A Finding names its kind and the anchor of its episode (what makes the alert id stable); the
summary sentence and the evidence are only rendered (alerts.py) for findings not yet emitted."""
from __future__ import annotations

from typing import Any, NamedTuple


class Obs(NamedTuple):
    """One normalised result in the history: epoch seconds, value (None = deleted), id, status,
    reported-at epoch seconds and ingested-at epoch microseconds (0 when unknown; they order the
    versions of one result of equal status rank)."""

    t: int
    v: float | None
    oid: str
    st: str
    rep: int = 0
    ing: int = 0


class Adm(NamedTuple):
    """One medication administration: start/end epoch seconds, class, mg/kg, id, status code;
    ``mg``: a dose given as a mass (70 g -> 70000.0). A dose is in mgkg or mg, as recorded."""

    t: int
    end: int | None
    cls: str
    mgkg: float | None
    aid: str
    st: str  # "c" completed, "i" in-progress, "s" stopped, "x" not-done / entered-in-error
    rep: int = 0
    mg: float | None = None


class Finding(NamedTuple):
    kind: str
    anchor: str  # episode anchor: with patient and kind, determines the alert id
    t: int  # collection time of the deciding result (epoch seconds)
    value: float | None  # the deciding ANC, when a count decided it
    severity: str
    ctx: dict[str, Any]  # rule-specific inputs for the summary and evidence


SEVERITY = {
    "grade_change": "warning", "severe_neutropenia": "critical", "agranulocytosis": "critical",
    "rapid_decline": "warning", "recovery": "info", "chronic_neutropenia": "warning",
    "cyclic_neutropenia_suspected": "warning", "post_ivig_neutropenia_pattern": "warning",
    "ivig_baseline_missing": "warning", "drug_associated_neutropenia_suspected": "warning",
    "febrile_neutropenia": "critical", "expected_dip": "info", "alert_retracted": "info",
}
KINDS = tuple(SEVERITY)
