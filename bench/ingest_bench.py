"""Ingest benchmark: prints figures, asserts nothing.

Measured in one run on this machine:
  * the broker's raw produce rate with kafka-python (acks=all, idempotent): pipelined, and one
    send-and-wait at a time (the shape of commit-then-ACK on one connection);
  * pure parse + normalise of the NIST CBC sample (no I/O);
  * HL7 over MLLP into `neutrowatch up` with commit-then-ACK, on one connection and on eight.
Usage: python bench/ingest_bench.py [--messages N] (embedded Tansu and redis-server are started).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from hl7.client import MLLPClient
from kafka import KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from processes import start_up  # noqa: E402

from neutrowatch.domain.codes import CodeMap  # noqa: E402
from neutrowatch.parsing.hl7v2 import parse_hl7  # noqa: E402
from neutrowatch.platform.embedded import EmbeddedKafka, EmbeddedRedis  # noqa: E402
from neutrowatch.platform.kafka import ensure_topics  # noqa: E402
from neutrowatch.platform.settings import Settings  # noqa: E402

NIST = (ROOT / "tests/fixtures/hl7/fhirconverter__LRI_2.0-NG_CBC_Typ_Message.hl7").read_text(encoding="utf-8-sig")


def message(i: int, conn: int) -> str:
    return NIST.replace("NIST-LRI-NG-002.00", f"BENCH-{conn}-{i}-{time.monotonic_ns()}")


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def raw_produce(bootstrap: str, n: int) -> tuple[float, float]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=1)
    value = b"x" * 600  # about one normalised lab-result record
    started = time.perf_counter()
    for future in [producer.send("bench.raw", key=b"k%d" % (i % 100), value=value) for i in range(n)]:
        future.get(30)
    pipelined = rate(n, time.perf_counter() - started)
    m = max(n // 10, 100)
    started = time.perf_counter()
    for i in range(m):
        producer.send("bench.raw", key=b"k", value=value).get(30)
    one_at_a_time = rate(m, time.perf_counter() - started)
    producer.close()
    return pipelined, one_at_a_time


def parse_rate(n: int) -> float:
    codes = CodeMap.from_mapping({})
    texts = [message(i, 0) for i in range(n)]
    started = time.perf_counter()
    for text in texts:
        parse_hl7(text, codes)
    return rate(n, time.perf_counter() - started)


def mllp_rate(port: int, connections: int, per_connection: int) -> float:
    errors: list[str] = []

    def worker(conn: int) -> None:
        with MLLPClient("127.0.0.1", port) as client:
            for i in range(per_connection):
                ack = client.send_message(message(i, conn))
                if b"MSA|AA|" not in ack:
                    errors.append(ack.decode(errors="replace"))

    threads = [threading.Thread(target=worker, args=(c,)) for c in range(connections)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} messages were not acknowledged AA, e.g. {errors[0]!r}")
    return rate(connections * per_connection, elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=2000)
    n = parser.parse_args().messages
    with EmbeddedKafka() as kafka, EmbeddedRedis() as redis:
        ensure_topics(Settings(kafka_bootstrap=kafka.bootstrap), ["bench.raw"])
        pipelined, sequential = raw_produce(kafka.bootstrap, n)
        parsed = parse_rate(n)
        service, mllp_port, _ = start_up(kafka.bootstrap, redis.url)
        try:
            mllp_rate(mllp_port, 1, 50)  # warm-up
            one = mllp_rate(mllp_port, 1, max(n // 4, 100))
            eight = mllp_rate(mllp_port, 8, max(n // 8, 50))
        finally:
            service.stop()
    print(f"{'what':58} {'msg/s':>10} {'vs raw pipelined':>17} {'vs raw one-at-a-time':>21}")
    rows = [("broker raw produce, pipelined (kafka-python, acks=all)", pipelined),
            ("broker raw produce, one send-and-wait at a time", sequential),
            ("parse + normalise only (NIST CBC, no I/O)", parsed),
            ("MLLP commit-then-ACK, 1 connection", one),
            ("MLLP commit-then-ACK, 8 connections", eight)]
    for name, value in rows:
        print(f"{name:58} {value:10.0f} {value / pipelined:17.2f} {value / sequential:21.2f}")


if __name__ == "__main__":
    main()
