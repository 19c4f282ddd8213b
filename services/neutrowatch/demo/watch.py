"""Watching the pipeline from the outside: every alert as it lands on the alerts topic, and how far
the monitor worker has got (its own Prometheus counters against what ingest published)."""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from neutrowatch import topics
from neutrowatch.platform.settings import Settings

log = logging.getLogger(__name__)
INPUT_TOPICS = (topics.LAB_RESULTS, topics.MEDICATION_ADMINISTRATIONS)


class AlertTail:
    """Reads neutrowatch.alerts.v1 from the beginning (no consumer group) and calls ``on_alert``
    for each record in arrival order."""

    def __init__(self, settings: Settings, on_alert: Callable[[dict], None]):
        self.settings, self.on_alert = settings, on_alert
        self.seen = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self.settings.aiokafka_client_config(), enable_auto_commit=False,
                                          client_id="neutrowatch-demo", fetch_max_wait_ms=50)
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(topics.ALERTS)
        if not partitions:
            await self._consumer._client.force_metadata_update()  # noqa: SLF001 - first look
            partitions = self._consumer.partitions_for_topic(topics.ALERTS) or {0}
        tps = [TopicPartition(topics.ALERTS, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run(), name="demo-alert-tail")

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away: keep trying while the demo runs
                log.warning("demo alert tail: %s", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            records = [m for ms in batches.values() for m in ms]
            for m in sorted(records, key=lambda m: m.timestamp or 0):
                self.seen += 1
                try:
                    self.on_alert(json.loads(m.value))
                except ValueError:
                    continue

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


def published() -> int:
    """Events ingest (in this process) handed to the monitor's input topics, acknowledged by Kafka."""
    return int(sum(REGISTRY.get_sample_value("neutrowatch_ingest_events_published_total", {"topic": t}) or 0
                   for t in INPUT_TOPICS))


def _sum(text: str, family: str) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            total += sum(s.value for s in fam.samples if s.name.endswith("_total"))
    return total


class MonitorProgress:
    """``caught_up``: the monitor consumed every published event, produced its alerts and the
    demo's tail has read them all. Reads the worker's counters through ``metrics_text``."""

    def __init__(self, metrics_text: Callable[[], Awaitable[bytes]], tail: AlertTail):
        self.metrics_text, self.tail = metrics_text, tail

    async def counts(self) -> tuple[int, int]:
        text = (await self.metrics_text()).decode("utf-8", errors="replace")
        return (int(_sum(text, "neutrowatch_monitor_events_consumed")),
                int(_sum(text, "neutrowatch_monitor_alerts_produced")))

    async def consumed_all(self, timeout: float, poll: float = 0.02) -> bool:
        """Wait until the monitor has taken every published event (then per-patient order holds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        want = published()
        while loop.time() < deadline:
            consumed, _ = await self.counts()
            if consumed >= want:
                return True
            await asyncio.sleep(poll)
        return False

    async def settled(self, timeout: float, quiet: float = 0.4) -> bool:
        """Every published event processed and every alert produced so far read by the tail, and
        nothing new for ``quiet`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        stable_since, last = None, None
        while loop.time() < deadline:
            consumed, produced = await self.counts()
            state = (consumed, produced, self.tail.seen)
            done = consumed >= published() and self.tail.seen >= produced
            if done and state == last:
                stable_since = stable_since or loop.time()
                if loop.time() - stable_since >= quiet:
                    return True
            else:
                stable_since = None
            last = state
            await asyncio.sleep(0.05)
        return False
