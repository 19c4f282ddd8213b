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
CONTROL_ID_REUSED = Counter(
    "neutrowatch_ingest_control_id_reused_total",
    "HL7 messages whose sender and MSH-10 were seen before with other content (processed as new).")
DEDUP_ERRORS = Counter(
    "neutrowatch_ingest_dedup_unavailable_total",
    "Resend checks skipped because Redis did not answer (the message was still accepted).")

# Monitor (streaming detection). Labels: topic, kind, severity, reason code, operation.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
MONITOR_EVENTS = Counter(
    "neutrowatch_monitor_events_consumed_total", "Input events the monitor consumed, by topic.", ["topic"])
MONITOR_ALERTS = Counter(
    "neutrowatch_monitor_alerts_produced_total", "Alerts produced to the alerts topic, by kind and severity.",
    ["kind", "severity"])
MONITOR_REJECTED = Counter(
    "neutrowatch_monitor_events_rejected_total",
    "Input events the monitor dead-lettered, by reason (schema_violation, not_json, engine_error).", ["reason"])
MONITOR_E2E_SECONDS = Histogram(
    "neutrowatch_monitor_end_to_end_latency_seconds",
    "Time from ingest handing the deciding event to Kafka (its ingested_at) to the alert being produced.",
    buckets=_LATENCY_BUCKETS)
MONITOR_EVENT_SECONDS = Histogram(
    "neutrowatch_monitor_event_processing_seconds",
    "Processing time per event (its batch's decode, step, Redis commit and relay, divided by the batch size).",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1))
MONITOR_BATCH_SECONDS = Histogram(
    "neutrowatch_monitor_batch_seconds", "Wall time to make one batch durable (Redis and Kafka).",
    buckets=_LATENCY_BUCKETS)
MONITOR_REDIS_SECONDS = Histogram(
    "neutrowatch_monitor_redis_round_trip_seconds", "Redis round trip of the monitor, by operation.",
    ["operation"], buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1))
MONITOR_RETRIES = Counter(
    "neutrowatch_monitor_retries_total", "Batches retried because a dependency failed, by dependency.",
    ["dependency"])
MONITOR_CONFLICTS = Counter(
    "neutrowatch_monitor_state_conflicts_total",
    "Per-patient commits refused because another worker changed the state first (re-run).")
MONITOR_LAG = Gauge(
    "neutrowatch_monitor_consumer_lag", "Events waiting on the monitor's assigned partitions, by topic "
    "(from the broker's high watermark; wrong on brokers that misreport it, e.g. Tansu).", ["topic"])
MONITOR_OUTBOX = Gauge(
    "neutrowatch_monitor_outbox_pending", "Alerts committed to Redis and not yet acknowledged by Kafka.")
MONITOR_ASSIGNED = Gauge(
    "neutrowatch_monitor_assigned_partitions", "Input partitions assigned to this worker.")
MONITOR_READY = Gauge("neutrowatch_monitor_ready", "1 while this worker is ready (connected and advancing).")

# Notify (alert delivery). Labels: receiver type, purpose, reason code — never a patient or alert id.
NOTIFY_SENT = Counter(
    "neutrowatch_notify_notifications_sent_total", "Notifications delivered, by receiver type and purpose "
    "(alert, escalation, retraction).", ["receiver_type", "purpose"])
NOTIFY_FAILED = Counter(
    "neutrowatch_notify_notifications_failed_total", "Delivery attempts that failed, by receiver type, reason "
    "code and whether they will be retried.", ["receiver_type", "reason", "retry"])
NOTIFY_SUPPRESSED = Counter(
    "neutrowatch_notify_notifications_suppressed_total", "Notifications not sent, by reason (duplicate, silenced, "
    "inhibited_by_critical, acknowledged, retracted).", ["reason"])
NOTIFY_DELIVERY_SECONDS = Histogram(
    "neutrowatch_notify_delivery_latency_seconds", "Time from the alert being produced to the alerts topic to "
    "its first notification being delivered, by receiver type.", ["receiver_type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
NOTIFY_ACK_SECONDS = Histogram(
    "neutrowatch_notify_time_to_acknowledge_seconds", "Time from an alert's first delivery to its acknowledgement.",
    buckets=(10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400))
NOTIFY_OPEN_CRITICAL = Gauge(
    "neutrowatch_notify_open_unacknowledged_critical_alerts", "Critical alerts delivered and not acknowledged "
    "(nor retracted).")
NOTIFY_OLDEST_UNACKED_CRITICAL_AGE = Gauge(
    "neutrowatch_notify_oldest_unacknowledged_critical_age_seconds", "Age (now - first delivery) of the oldest "
    "critical alert delivered and neither acknowledged nor retracted; 0 when there is none.")
NOTIFY_ALERTS_CONSUMED = Counter(
    "neutrowatch_notify_alerts_consumed_total", "Alert records notify consumed, by outcome (accepted, "
    "redelivered, retraction, rejected).", ["outcome"])

# Readiness of every process, one series per named check (set on each /readyz evaluation).
READY = Gauge("neutrowatch_ready", "1 while the named readiness check passes, 0 when it fails (as of the "
              "last /readyz).", ["check"])
