"""The streaming monitor on a real broker and a real redis-server: HL7 over MLLP in, explained
alerts out (topic and HTTP API); a crash of the monitor mid-stream; two workers; a Redis restart."""
from __future__ import annotations

import collections
import json
import os
import re
import signal
import time
import urllib.parse
import urllib.request

import pytest
from hl7.client import MLLPClient

from kafka_reader import read_records
from monitor_helpers import (anc_record, fresh, lab_only_records, new_tag, produce, reference_alerts, wait_for)
from neutrowatch.platform.embedded import EmbeddedKafka, EmbeddedRedis, free_port
from processes import Service, http_json, start_up
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration
ALERTS = "neutrowatch.alerts.v1"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, redis_url):
    service, mllp_port, http_port = start_up(kafka_bootstrap, redis_url)
    yield service, mllp_port, http_port
    service.stop()


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def api(http_port: int, path: str):
    return http_json(f"http://127.0.0.1:{http_port}{path}")


def patient_alerts(http_port: int, patient_key: str, extra: str = "") -> list[dict]:
    q = urllib.parse.quote(patient_key, safe="")
    status, body = api(http_port, f"/alerts?patient={q}&limit=500{extra}")
    assert status == 200, body
    return body["alerts"]


def topic_alerts(bootstrap: str, keys: set[str], expect: int | None, timeout: float) -> list[dict]:
    return read_records(bootstrap, ALERTS, lambda r: r["patient_key"] in keys, expect=expect, timeout=timeout)


def assert_each_alert_once_on_topic(bootstrap: str, keys: set[str], expected: dict, timeout: float) -> None:
    """Every expected alert is on the topic and none twice (read again after a pause, so that a
    duplicate sent late would be seen too)."""
    topic_alerts(bootstrap, keys, expect=len(expected), timeout=timeout)
    time.sleep(1.5)
    ids = [a["alert_id"] for a in topic_alerts(bootstrap, keys, expect=None, timeout=2)]
    assert [i for i, n in collections.Counter(ids).items() if n > 1] == []
    assert set(ids) == set(expected)


def oru(control_id: str, patient: str, collected: str, anc_k: str) -> str:
    return "\r".join([
        f"MSH|^~\\&|LAB|TESTLAB|NW|NW|{collected}+0000||ORU^R01|{control_id}|P|2.5.1",
        f"PID|1||{patient}^^^TESTMPI^MR||Doe^Jane",
        f"OBR|1|ORD-{control_id}|FILL-{control_id}|57021-8^CBC^LN|||{collected}+0000",
        f"OBX|1|NM|751-8^Neutrophils^LN||{anc_k}|10*3/uL|||||F|||{collected}+0000",
    ]) + "\r"


def test_hl7_over_mllp_comes_out_as_an_explained_alert_within_seconds(stack, kafka_bootstrap):
    _, mllp_port, http_port = stack
    patient = new_tag()
    key = f"TESTMPI|{patient}"
    with MLLPClient("127.0.0.1", mllp_port) as client:
        client.send_message(oru(patient + "a", patient, "20260110080000", "2.6"))
        sent = time.monotonic()
        client.send_message(oru(patient + "b", patient, "20260111080000", "0.3"))
    alerts = wait_for(lambda: [a for a in patient_alerts(http_port, key) if a["kind"] == "severe_neutropenia"], 15)
    latency = time.monotonic() - sent
    assert alerts, "no severe_neutropenia alert on GET /alerts"
    assert latency < 10
    severe = alerts[0]
    assert severe["anc_cells_per_ul"] == 300 and severe["severity"] == "critical"
    assert "300" in severe["summary"] and severe["evidence"]["observations"]
    assert severe["evidence"]["rapid_decline"]["from"]["value"] == 2600  # 2600 -> 300 within 72 h
    on_topic = topic_alerts(kafka_bootstrap, {key}, expect=len(patient_alerts(http_port, key)), timeout=10)
    assert {a["alert_id"] for a in on_topic} == {a["alert_id"] for a in patient_alerts(http_port, key)}
    assert all(a["_key"] == key for a in on_topic)
    assert api(http_port, f"/alerts/{severe['alert_id']}") == (200, severe)
    q = urllib.parse.quote(key, safe="")
    status, timeline = api(http_port, f"/patients/{q}/anc")
    assert status == 200
    assert [(o["value"], o["grade"], o["provenance"]) for o in timeline["anc"]] == [
        (2600, "normal", "direct"), (300, "severe", "direct")]
    status, state = api(http_port, f"/patients/{q}/state")
    assert status == 200 and state["current_grade"] == "severe"
    assert {e["kind"] for e in state["open_episodes"]} == {"neutropenia", "severe"}
    body = http_text(f"http://127.0.0.1:{http_port}/metrics")
    assert "neutrowatch_monitor_alerts_produced_total" in body and patient not in body


def test_ivig_case_gives_the_post_ivig_pattern_with_its_evidence(stack, kafka_bootstrap):
    _, _, http_port = stack
    records = fresh("ivig_case", new_tag())
    key = records[0]["patient_key"]
    produce(kafka_bootstrap, records)
    found = wait_for(lambda: patient_alerts(http_port, key, "&kind=post_ivig_neutropenia_pattern"), 20)
    assert len(found) == 1
    evidence = found[0]["evidence"]
    assert evidence["rule"] == "post_ivig_neutropenia_pattern"
    assert evidence["dips"] >= 2 and evidence["cycles"] and evidence["doses_mg_per_kg"] == [1000]
    assert all(c["infusion"] for c in evidence["cycles"])
    q = urllib.parse.quote(key, safe="")
    # the case report's patient is chronically neutropenic too (across the COVID-19 rise)
    want = {"post_ivig_neutropenia_pattern", "chronic_neutropenia"}
    assert wait_for(lambda: {p["kind"] for p in api(http_port, f"/patients/{q}/state")[1].get(
        "detected_patterns") or []} == want or None, 10)
    timeline = api(http_port, f"/patients/{q}/anc")[1]["anc"]
    assert any(o["linked_infusions"] and o["linked_infusions"][0]["drug_class"] == "ivig" for o in timeline)


def test_a_count_dated_in_the_future_is_dead_lettered_and_does_not_blind_the_patient(stack, kafka_bootstrap):
    """A canonical producer writes a count mistyped as collected in 2062 straight to the topic (past
    ingest's check). Taken in, it would be the patient's newest count, and every real count would
    fall behind the history bound measured back from it: the 300 after it would page no one. The
    monitor dead-letters it with its reason, and the 300 gives its severe alert."""
    _, _, http_port = stack
    patient = new_tag()
    key = f"TESTMPI|{patient}"

    produce(kafka_bootstrap, [anc_record(patient, "1", "F", "2026-01-05T08:00:00+00:00", 3000),
                              anc_record(patient, "2", "F", "2062-01-06T08:00:00+00:00", 2900),
                              anc_record(patient, "3", "F", "2026-01-07T08:00:00+00:00", 300)])
    severe = wait_for(lambda: patient_alerts(http_port, key, "&kind=severe_neutropenia"), 20)
    assert len(severe) == 1 and severe[0]["anc_cells_per_ul"] == 300
    dead = read_records(kafka_bootstrap, "neutrowatch.dead-letter.v1",
                        lambda r: patient in r.get("raw", ""), expect=1, timeout=10)
    assert dead[0]["reason_code"] == "future_time" and dead[0]["field"] == "collected_at"
    assert "2062-01-06T08:00:00+00:00" in dead[0]["reason"] and "time zone" in dead[0]["reason"]
    q = urllib.parse.quote(key, safe="")
    assert [o["value"] for o in api(http_port, f"/patients/{q}/anc")[1]["anc"]] == [3000, 300]


def test_alerts_api_filters_and_pages(stack):
    _, _, http_port = stack
    status, page = api(http_port, "/alerts?severity=critical&limit=1")
    assert status == 200 and page["count"] <= 1
    assert all(a["severity"] == "critical" for a in page["alerts"])
    assert api(http_port, "/alerts?kind=nonsense")[0] == 400
    assert api(http_port, "/alerts/" + "0" * 32)[0] == 404
    status, doc = api(http_port, "/openapi.json")
    assert status == 200 and {"/alerts", "/alerts/{alert_id}", "/patients/{patient}/anc",
                              "/patients/{patient}/state"} <= set(doc["paths"])


def monitor_pid(service: Service) -> int:
    pids = re.findall(r"monitor worker started \(pid (\d+)", service.output())
    return int(pids[-1])


def test_sigkill_of_the_monitor_mid_stream_loses_nothing_and_users_see_no_duplicate(stack, kafka_bootstrap):
    service, _, http_port = stack
    tag = new_tag()
    records = lab_only_records(tag, copies=6)
    expected = reference_alerts(records)
    keys = {r["patient_key"] for r in records}
    import threading
    feeder = threading.Thread(target=produce, args=(kafka_bootstrap, records), kwargs={"rate": 150})
    feeder.start()
    time.sleep(1.0)
    victim = monitor_pid(service)
    os.kill(victim, signal.SIGKILL)
    feeder.join(30)
    assert wait_for(lambda: monitor_pid(service) != victim, 15), "the monitor was not restarted"
    got = topic_alerts(kafka_bootstrap, keys, expect=len(expected), timeout=45)
    time.sleep(1.5)
    got = topic_alerts(kafka_bootstrap, keys, expect=None, timeout=2)
    # The topic is at-least-once: a kill between Kafka's ack and the outbox clear re-sends that
    # alert, with the same alert_id, at restart. Nothing is lost, and what people see (the API,
    # notifications, both keyed by alert_id) holds each alert exactly once.
    assert {a["alert_id"] for a in got} == set(expected)
    seen = [a["alert_id"] for key in keys for a in patient_alerts(http_port, key)]
    assert [i for i, n in collections.Counter(seen).items() if n > 1] == []
    assert set(seen) == set(expected)
    assert wait_for(lambda: api(http_port, "/readyz")[0] == 200, 20)


@pytest.fixture
def private_servers():
    """A broker and an AOF redis-server of this test's own (the group and topics are shared by
    every worker on a broker, so worker-level tests do not share the session's)."""
    with EmbeddedKafka() as kafka, EmbeddedRedis(appendonly=True) as redis:
        yield kafka, redis


def start_monitor(bootstrap: str, redis_url: str) -> tuple[Service, int]:
    port = free_port()
    service = Service(["monitor", "--kafka", bootstrap, "--redis", redis_url, "--monitor-http-port",
                       str(port), "--monitor-retry-max-seconds", "1"]).start()
    return service, port


def worker_ready(port: int) -> bool:
    try:
        return http_json(f"http://127.0.0.1:{port}/readyz")[0] == 200
    except OSError:
        return False


def consumed(port: int) -> float:
    text = http_text(f"http://127.0.0.1:{port}/metrics")
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("neutrowatch_monitor_events_consumed_total{"))


def test_two_workers_split_the_patients_and_produce_the_same_alerts(private_servers):
    kafka, redis = private_servers
    workers = [start_monitor(kafka.bootstrap, redis.url) for _ in range(2)]
    try:
        assert wait_for(lambda: all(worker_ready(p) for _, p in workers), 40), [s.output()[-2000:] for s, _ in workers]
        records = lab_only_records(new_tag(), copies=4)
        expected = reference_alerts(records)
        produce(kafka.bootstrap, records)
        keys = {r["patient_key"] for r in records}
        assert_each_alert_once_on_topic(kafka.bootstrap, keys, expected, 30)
        assert all(consumed(p) > 0 for _, p in workers), "a worker took no partition"
    finally:
        for service, _ in workers:
            service.stop()


def test_redis_restart_during_a_stream_loses_no_state_and_duplicates_no_alert(private_servers):
    kafka, redis = private_servers
    service, port = start_monitor(kafka.bootstrap, redis.url)
    try:
        assert wait_for(lambda: worker_ready(port), 40), service.output()[-2000:]
        records = lab_only_records(new_tag(), copies=4)
        expected = reference_alerts(records)
        keys = {r["patient_key"] for r in records}
        half = len(records) // 2
        produce(kafka.bootstrap, records[:half])
        time.sleep(1.0)
        redis.kill()  # SIGKILL: only the AOF (appendfsync always) survives
        produce(kafka.bootstrap, records[half:half + 40])
        assert wait_for(lambda: not worker_ready(port), 15), "not-ready not reported while Redis is away"
        redis.start()
        produce(kafka.bootstrap, records[half + 40:])
        assert wait_for(lambda: worker_ready(port), 30)
        assert_each_alert_once_on_topic(kafka.bootstrap, keys, expected, 30)
    finally:
        service.stop()


class BrokerBehind(EmbeddedKafka):
    """Tansu that tells its clients to connect through ``advertised`` (a TcpProxy's port)."""

    def __init__(self, advertised: int):
        super().__init__()
        self.advertised = advertised

    def command(self) -> list[str]:
        return [*super().command()[:-1], f"tcp://127.0.0.1:{self.advertised}"]


def test_broker_unreachable_mid_stream_pauses_the_monitor_and_it_resumes_without_loss():
    """Every connection to the broker cut (refused) while the monitor works through a backlog, for
    longer than the group session: it reports not-ready naming Kafka, then, once the broker is
    reachable again, rejoins, finishes the backlog and what came meanwhile, and every alert of the
    stream is on the topic once."""
    with EmbeddedRedis() as redis, TcpProxy(free_port()) as proxy:
        kafka = BrokerBehind(proxy.port)
        proxy.target_port = kafka.port
        with kafka:
            bootstrap = f"127.0.0.1:{proxy.port}"
            records = lab_only_records(new_tag(), copies=30)
            expected = reference_alerts(records)
            keys = {r["patient_key"] for r in records}
            half = len(records) // 2
            produce(bootstrap, records[:half])  # a backlog waiting for the monitor
            service, port = start_monitor(bootstrap, redis.url)
            try:
                assert wait_for(lambda: worker_ready(port) and consumed(port) > 0, 40, 0.05), \
                    service.output()[-2000:]
                proxy.cut()
                assert consumed(port) < half, "the backlog was done before the cut: nothing tested"
                assert wait_for(lambda: api(port, "/readyz")[0] == 503, 20), "not-ready not reported"
                assert api(port, "/readyz")[1]["checks"]["kafka"] is False
                time.sleep(8)  # past the group session (6 s): the broker drops the member
                proxy.restore()
                produce(bootstrap, records[half:])
                assert wait_for(lambda: worker_ready(port) and consumed(port) >= len(records), 60), \
                    service.output()[-3000:]
                assert_each_alert_once_on_topic(bootstrap, keys, expected, 60)
            finally:
                service.stop()


def test_a_remembered_state_another_worker_changed_is_reloaded_not_overwritten(redis_url):
    """Two processors (two workers during a rebalance) on one real Redis, each remembering the
    states it committed: whichever commits on top of a state the other changed is refused by the
    version check, reloads and re-steps, so the stored history holds every event, each alert is
    emitted once, and a redelivered event changes nothing."""
    import asyncio

    from redis.asyncio import Redis

    from neutrowatch import schemas, topics
    from neutrowatch.detection import DetectionConfig
    from neutrowatch.monitor.processor import Processor
    from neutrowatch.monitor.state_store import StateStore

    class Collect:
        def __init__(self):
            self.alerts = []

        async def send(self, records):
            self.alerts += [r.value for r in records if r.topic == topics.ALERTS]

    records = lab_only_records(new_tag())
    expected = reference_alerts(records)
    payloads = [(topics.topic_for(r), schemas.encode(r)) for r in records]

    async def run():
        client = Redis.from_url(redis_url)
        try:
            a, b = Collect(), Collect()
            first = Processor(StateStore(client), a, DetectionConfig())
            second = Processor(StateStore(client), b, DetectionConfig())
            for i in range(0, len(payloads), 7):  # the patients move between the workers
                await (first if (i // 7) % 2 == 0 else second).process(payloads[i:i + 7])
            await first.process(payloads[:20])  # a redelivery to the worker with stale states
            stored = await StateStore(client).load_many({r["patient_key"] for r in records})
            return a.alerts + b.alerts, stored
        finally:
            await client.aclose()

    alerts, stored = asyncio.run(run())
    ids = [x["alert_id"] for x in alerts]
    assert len(ids) == len(set(ids)) and set(ids) == set(expected)
    anc = {(r["patient_key"], r["observation_id"]) for r in records if r["analyte"] == "anc"}
    kept = {(pk, o.oid) for pk, loaded in stored.items() for o in loaded.state.anc}
    assert kept == anc
