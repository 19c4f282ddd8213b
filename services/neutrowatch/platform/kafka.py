"""Kafka adapter (kafka-python): explicit topic creation and a commit-then-acknowledge publisher."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Iterable

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from neutrowatch import schemas, topics
from neutrowatch.platform.settings import Settings

log = logging.getLogger(__name__)


class PublishError(RuntimeError):
    """Kafka did not acknowledge every record: the sender must be told to resend."""


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: str
    value: dict

    @classmethod
    def of(cls, record: dict, key: str) -> "OutRecord":
        return cls(topics.topic_for(record), key, record)


def ensure_topics(settings: Settings, names: Iterable[str] = topics.ALL, timeout: float = 30.0) -> list[str]:
    """Create every topic with the configured partition count; returns the ones created now.

    Brokers that auto-create topics do so with their own partition count, which breaks
    co-partitioning of keyed topics, so nothing may touch a topic before this ran.
    """
    admin = KafkaAdminClient(**settings.kafka_client_config(), request_timeout_ms=int(timeout * 1000),
                             client_id="neutrowatch-admin")
    try:
        existing = set(admin.list_topics())
        wanted = [n for n in names if n not in existing]
        new = [NewTopic(n, settings.kafka_partitions, settings.kafka_replication_factor) for n in wanted]
        if new:
            try:
                admin.create_topics(new, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                pass
        return wanted
    finally:
        admin.close()


class Publisher:
    """Sends records with acks=all on an idempotent producer; ``publish`` returns only once
    Kafka acknowledged every record, and raises PublishError otherwise.

    kafka-python is thread-based: ``send`` can block while metadata is fetched, so it runs in a
    worker thread and acknowledgements come back to the event loop through futures.
    """

    def __init__(self, settings: Settings):
        self._settings = settings
        self._producer: KafkaProducer | None = None

    def start(self) -> None:
        timeout_ms = int(self._settings.produce_timeout_seconds * 1000)
        self._producer = KafkaProducer(
            **self._settings.kafka_client_config(),
            client_id="neutrowatch-ingest",
            acks="all",
            enable_idempotence=True,
            linger_ms=1,
            max_block_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms - 500, 1000),
            delivery_timeout_ms=timeout_ms + 1000,
            key_serializer=str.encode,
        )
        self._producer.partitions_for(topics.LAB_RESULTS)  # fetch metadata and connect now

    def close(self, timeout: float = 5.0) -> None:
        if self._producer is not None:
            self._producer.close(timeout=timeout)
            self._producer = None

    def connected(self) -> bool:
        """A broker connection is up (or being re-established: then False until it is)."""
        if self._producer is None:
            return False
        client = self._producer._sender._client  # kafka-python exposes no public connection state
        return any(client.ready(broker.node_id) for broker in client.cluster.brokers())

    async def publish(self, records: list[OutRecord]) -> None:
        """All or nothing: every value is validated against its schema (SchemaError) before any
        is sent; then every send must be acknowledged (PublishError)."""
        if not records:
            return
        if self._producer is None:
            raise PublishError("publisher not started")
        encoded = [(r.topic, r.key, schemas.encode(r.value)) for r in records]
        loop = asyncio.get_running_loop()
        try:
            futures = await loop.run_in_executor(None, self._send_all, encoded)
            await asyncio.wait_for(asyncio.gather(*(_bridge(loop, f) for f in futures)),
                                   self._settings.produce_timeout_seconds + 2)
        except (KafkaError, asyncio.TimeoutError, OSError) as exc:
            raise PublishError(f"Kafka did not acknowledge: {type(exc).__name__}") from exc

    def _send_all(self, encoded: list[tuple[str, str, bytes]]):
        assert self._producer is not None
        return [self._producer.send(topic, key=key, value=value) for topic, key, value in encoded]


def _bridge(loop: asyncio.AbstractEventLoop, kafka_future) -> asyncio.Future:
    fut = loop.create_future()

    def done(value=None, exc=None):
        if not fut.done():
            fut.set_exception(exc) if exc is not None else fut.set_result(value)

    kafka_future.add_callback(lambda md: loop.call_soon_threadsafe(done, md))
    kafka_future.add_errback(lambda e: loop.call_soon_threadsafe(done, None, e))
    return fut
