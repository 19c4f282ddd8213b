"""Topic names (contracts: the version is in the name) and the schema each carries."""
from __future__ import annotations

LAB_RESULTS = "neutrowatch.lab-results.v1"
MEDICATION_ADMINISTRATIONS = "neutrowatch.medication-administrations.v1"
DEAD_LETTER = "neutrowatch.dead-letter.v1"
ALERTS = "neutrowatch.alerts.v1"
NOTIFICATIONS = "neutrowatch.notifications.v1"

SCHEMA_OF_TOPIC = {
    LAB_RESULTS: "lab-result.v1",
    MEDICATION_ADMINISTRATIONS: "medication-administration.v1",
    DEAD_LETTER: "dead-letter.v1",
    ALERTS: "alert.v1",
    NOTIFICATIONS: "notification.v1",
}

ALL = tuple(SCHEMA_OF_TOPIC)

TOPIC_OF_SCHEMA = {f"neutrowatch.{schema}": topic for topic, schema in SCHEMA_OF_TOPIC.items()}


def topic_for(record: dict) -> str:
    return TOPIC_OF_SCHEMA[record["schema"]]
