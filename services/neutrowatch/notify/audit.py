"""Audit records of neutrowatch.notifications.v1: one per decision, without patient identifiers."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

from neutrowatch.domain.ids import stable_id
from neutrowatch.notify.decisions import Job

SCHEMA = "neutrowatch.notification.v1"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(job: Job, alert: Mapping[str, Any] | None, outcome: str, reason: str, now: float,
           receiver_type: str = "none", silence_id: str | None = None,
           ack: Mapping[str, Any] | None = None, delivery_id: str | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "schema": SCHEMA,
        "notification_id": stable_id("notification.v1", job.key, job.attempt, outcome, reason,
                                     ack.get("at") if ack else None),
        "alert_id": job.alert_id, "receiver": job.receiver, "receiver_type": receiver_type,
        "purpose": job.purpose, "level": job.level, "attempt": job.attempt, "outcome": outcome,
        "reason": reason, "decided_at": iso(now), "due_at": iso(job.due) if job.due else None,
    }
    if alert is not None:
        rec.update(alert_kind=alert["kind"], severity=alert["severity"], alert_observed_at=alert["observed_at"])
    if silence_id:
        rec["silence_id"] = silence_id
    if ack is not None:
        rec["ack"] = dict(ack)
    if delivery_id:
        rec["delivery_id"] = delivery_id
    return rec
