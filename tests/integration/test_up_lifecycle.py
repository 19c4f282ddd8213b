"""`neutrowatch up` as an operator runs it: embedded servers, readiness, Kafka outages, shutdown."""
from __future__ import annotations

import os
import re
import time
import urllib.request
import uuid

import hl7
import pytest
from hl7.client import MLLPClient

from processes import http_json, start_up
from neutrowatch.platform.embedded import EmbeddedKafka

pytestmark = pytest.mark.integration


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split()[2] != "Z"


def child_pids(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def test_up_with_embedded_servers_is_ready_and_stops_everything_on_sigterm():
    service, _, http_port = start_up(None, None)
    children = child_pids(service.proc.pid)
    try:
        output = service.output()
        assert re.search(r"embedded Kafka-protocol broker .* at 127\.0\.0\.1:\d+", output)
        assert re.search(r"embedded redis-server at redis://127\.0\.0\.1:\d+", output)
        status, body = http_json(f"http://127.0.0.1:{http_port}/readyz")
        assert status == 200 and body["checks"] == {"kafka": True, "redis": True, "mllp": True, "monitor": True}
        assert http_json(f"http://127.0.0.1:{http_port}/healthz")[0] == 200
        assert len(children) == 3  # broker, redis-server, monitor worker
        # One /metrics for the whole process tree, each family once, with the worker's own values.
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as response:
            lines = response.read().decode().splitlines()
        assert [line for line in lines if line.startswith("neutrowatch_monitor_ready ")] == [
            "neutrowatch_monitor_ready 1.0"]
        assert len([line for line in lines if line.startswith("neutrowatch_monitor_assigned_partitions ")]) == 1
        assert 'neutrowatch_ready{check="kafka"} 1.0' in lines
    finally:
        took = service.stop()
    assert took < 10
    assert service.proc.returncode == 0
    assert not [p for p in children if pid_alive(p)]


def test_kafka_outage_answers_ar_and_readiness_reports_it(redis_url):
    broker = EmbeddedKafka().start()
    service, mllp_port, http_port = start_up(broker.bootstrap, redis_url, ["--produce-timeout-seconds", "2"])
    try:
        broker.kill()
        control_id = "T" + uuid.uuid4().hex[:12]
        message = (f"MSH|^~\\&|LAB|TESTLAB|NW|NW|20260101120000||ORU^R01|{control_id}|P|2.5.1\r"
                   "PID|1||OUT1^^^TESTMPI\rOBR|1|O1|F1|57021-8^CBC^LN|||20260101080000\r"
                   "OBX|1|NM|751-8^ANC^LN||0.3|10*3/uL|||||F\r")
        with MLLPClient("127.0.0.1", mllp_port) as client:
            ack = hl7.parse(client.send_message(message).decode())
        assert str(ack.segment("MSA")[1]) == "AR" and str(ack.segment("MSA")[2]) == control_id
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status, body = http_json(f"http://127.0.0.1:{http_port}/readyz")
            if status == 503:
                break
            time.sleep(0.5)
        assert status == 503 and body["checks"]["kafka"] is False
    finally:
        service.stop()
        broker.stop()
