"""Helpers for the monitor's integration tests: scenario events for fresh patients, the reference
alert set (the engine run in-process over the same per-patient order), and a canonical producer."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from kafka import KafkaProducer

from neutrowatch import topics
from neutrowatch.detection import DetectionConfig, PatientState, step
from neutrowatch.domain.events import event_from_record

SCENARIOS = Path(__file__).parent / "scenarios"
# Lab-only scenarios: one input topic, so every patient's events arrive in file order and the
# streamed alert set is exactly the in-process one.
LAB_ONLY = ("cyclic_dense", "late_and_duplicated", "corrected", "deleted", "febrile")


def fresh(scenario: str, tag: str) -> list[dict]:
    """The scenario's records for a patient nobody else uses (ids prefixed with ``tag``)."""
    out = []
    for line in (SCENARIOS / f"{scenario}.ndjson").read_text().splitlines():
        rec = json.loads(line)
        old = rec["patient_id"]
        new = f"{tag}-{old}"
        text = json.dumps(rec).replace(f'"{old}', f'"{new}').replace(f"|{old}", f"|{new}")
        out.append(json.loads(text))
    return out


def new_tag() -> str:
    return "M" + uuid.uuid4().hex[:10]


def lab_only_records(tag: str, copies: int = 1) -> list[dict]:
    """Interleaved records of several lab-only patients (per-patient order preserved)."""
    streams = [fresh(name, f"{tag}{k}") for k in range(copies) for name in LAB_ONLY]
    out = []
    while any(streams):
        for s in streams:
            if s:
                out.append(s.pop(0))
    return out


def reference_alerts(records: list[dict], config: DetectionConfig | None = None) -> dict[str, dict]:
    states: dict[str, PatientState] = {}
    alerts = {}
    for rec in records:
        ev = event_from_record(rec)
        states[ev.patient_key], new = step(states.get(ev.patient_key) or PatientState.empty(), ev, config)
        for a in new:
            alerts[a.alert_id] = a.to_record()
    return alerts


def anc_record(patient: str, observation: str, version: str, collected: str, value: float,
               status: str = "F") -> dict:
    """A canonical ANC record of patient TESTMPI|``patient`` (``version`` names the event)."""
    return {"schema": "neutrowatch.lab-result.v1", "observation_id": f"{patient}-{observation}",
            "event_id": f"{patient}-{observation}-{version}", "patient_id": patient,
            "assigning_authority": "TESTMPI", "patient_key": f"TESTMPI|{patient}", "analyte": "anc",
            "value": value, "unit": "cells/uL", "status": status, "collected_at": collected,
            "source": {"type": "canonical"}, "provenance": "direct"}


def produce(bootstrap: str, records: list[dict], rate: float | None = None, stamp: bool = True) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    try:
        started = time.monotonic()
        for i, rec in enumerate(records):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if stamp:
                rec = {**rec, "ingested_at": _now()}
            producer.send(topics.topic_for(rec), key=rec["patient_key"].encode(),
                          value=json.dumps(rec).encode())
        producer.flush(10)
    finally:
        producer.close(5)


def _now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).isoformat()


def wait_for(predicate, timeout: float, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
