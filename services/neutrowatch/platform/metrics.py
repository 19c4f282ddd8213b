"""Prometheus metrics: namespace ``neutrowatch_``, base units, bounded label values only
(channel, outcome, reason code, topic — never a patient identifier)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGEST_MESSAGES = Counter(
    "neutrowatch_ingest_messages_total", "Messages received by ingest, by channel and outcome.",
    ["channel", "outcome"])
INGEST_REJECTIONS = Counter(
    "neutrowatch_ingest_rejections_total", "Inputs refused by ingest, by channel and reason code.",
    ["channel", "reason"])
INGEST_EVENTS = Counter(
    "neutrowatch_ingest_events_published_total", "Events acknowledged by Kafka, by topic.", ["topic"])
INGEST_ACK_SECONDS = Histogram(
    "neutrowatch_ingest_ack_seconds", "Time from a message's arrival to its acknowledgement.",
    ["channel"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
MLLP_CONNECTIONS = Gauge("neutrowatch_mllp_connections", "Open MLLP connections.")
DEDUP_ERRORS = Counter(
    "neutrowatch_ingest_dedup_unavailable_total",
    "Resend checks skipped because Redis did not answer (the message was still accepted).")
