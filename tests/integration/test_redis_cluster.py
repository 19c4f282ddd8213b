"""The monitor and its API on a real three-master Redis Cluster: per-patient keys spread over the
masters, the alert set equals the engine's, redelivery emits nothing new, and the API (whose
indexes live outside the patients' hash slots) lists every alert."""
from __future__ import annotations

import subprocess
import urllib.parse

import pytest

from kafka_reader import read_records
from monitor_helpers import lab_only_records, new_tag, produce, reference_alerts, wait_for
from processes import http_json, start_up
from redis_cluster import LocalRedisCluster

pytestmark = pytest.mark.integration
ALERTS = "neutrowatch.alerts.v1"


@pytest.fixture(scope="module")
def cluster():
    with LocalRedisCluster() as c:
        yield c


def keys_on(port: int) -> int:
    out = subprocess.run(["redis-cli", "-p", str(port), "dbsize"], capture_output=True, text=True, timeout=5)
    return int(out.stdout.strip())


def test_the_monitor_keeps_patient_state_in_a_redis_cluster(kafka_bootstrap, cluster):
    service, _, http_port = start_up(kafka_bootstrap, cluster.url, ["--redis-cluster"])
    try:
        records = lab_only_records(new_tag(), copies=4)
        expected = reference_alerts(records)
        keys = {r["patient_key"] for r in records}
        produce(kafka_bootstrap, records)
        got = read_records(kafka_bootstrap, ALERTS, lambda r: r["patient_key"] in keys,
                           expect=len(expected), timeout=45)
        assert sorted(a["alert_id"] for a in got) == sorted(expected)
        assert all(keys_on(port) > 0 for port in cluster.ports), "patient keys did not spread over the masters"

        # Redelivery of the same events (a replay) changes nothing and emits no second alert.
        produce(kafka_bootstrap, records)
        again = read_records(kafka_bootstrap, ALERTS, lambda r: r["patient_key"] in keys,
                             expect=len(expected) + 1, timeout=8)
        assert sorted(a["alert_id"] for a in again) == sorted(expected)

        def listed() -> set[str]:
            ids = set()
            for key in keys:
                status, body = http_json(f"http://127.0.0.1:{http_port}/alerts?limit=500&patient="
                                         + urllib.parse.quote(key, safe=""))
                assert status == 200, body
                ids |= {a["alert_id"] for a in body["alerts"]}
            return ids
        assert wait_for(lambda: listed() == set(expected), 10), "GET /alerts does not list every alert"
        one = next(iter(expected))
        assert http_json(f"http://127.0.0.1:{http_port}/alerts/{one}")[1]["alert_id"] == one
        assert http_json(f"http://127.0.0.1:{http_port}/readyz")[0] == 200
    finally:
        service.stop()
