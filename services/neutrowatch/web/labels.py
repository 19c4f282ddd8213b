"""Words for codes, as the pages show them (static/js/format.js has the same for the scripts)."""
from __future__ import annotations

KIND = {
    "grade_change": "Grade change", "severe_neutropenia": "Severe neutropenia",
    "agranulocytosis": "Agranulocytosis", "rapid_decline": "Rapid decline", "recovery": "Recovery",
    "chronic_neutropenia": "Chronic neutropenia", "cyclic_neutropenia_suspected": "Cyclic neutropenia suspected",
    "post_ivig_neutropenia_pattern": "Post-IVIG neutropenia pattern", "ivig_baseline_missing": "IVIG baseline missing",
    "expected_dip": "Expected dip",
    "drug_associated_neutropenia_suspected": "Drug-associated neutropenia suspected",
    "febrile_neutropenia": "Febrile neutropenia", "alert_retracted": "Alert retracted",
}
STATE = {"retracted": "Retracted", "acknowledged": "Acknowledged", "escalated": "Escalated", "sent": "Sent",
         "scheduled": "Scheduled", "not_sent": "Not sent", "waiting": "Waiting for notify",
         "not_tracked": "Not tracked"}
SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


def kind(code: str) -> str:
    return KIND.get(code, code.replace("_", " ").capitalize())
