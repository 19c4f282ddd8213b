"""Read what landed on a topic: assign every partition (no group join), from the beginning."""
from __future__ import annotations

import json
import time
from typing import Callable

from kafka import KafkaConsumer, TopicPartition


def read_records(bootstrap: str, topic: str, where: Callable[[dict], bool] = lambda r: True,
                 expect: int | None = None, timeout: float = 10.0) -> list[dict]:
    """Records of ``topic`` matching ``where``; waits until ``expect`` of them arrived (or for
    the whole ``timeout`` when ``expect`` is None, to show that nothing more comes)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=200).values():
                for message in messages:
                    record = json.loads(message.value)
                    record["_key"] = message.key.decode() if message.key else None
                    if where(record):
                        found.append(record)
            if expect is not None and len(found) >= expect:
                break
        return found
    finally:
        consumer.close()
