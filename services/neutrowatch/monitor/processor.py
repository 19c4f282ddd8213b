"""One batch of consumed events made durable: decode -> engine step -> atomic Redis commit ->
alerts on Kafka. Independent of faust, so it is tested with fakes and driven by the worker.

The caller acknowledges the batch's offsets only after ``process`` returned: by then every new
state and alert is in Redis and every alert and dead letter is acknowledged by Kafka. A failure
of Redis or Kafka is retried here with back-off (the worker reports not-ready meanwhile), so an
event is never acknowledged before it is durable. Redelivered events are no-ops: the engine
ignores an event it has seen, and the commit never re-adds a recorded alert.

A batch's events are grouped by patient: each patient's state is loaded once, every one of its
events is stepped in order, and the result is committed once. The processor keeps the states it
committed last (with the version Redis gave them; most recently used, bounded) and steps from
those instead of reading Redis again: the commit still checks the version, so a state another
worker changed meanwhile (a rebalance) is refused, dropped from the cache, reloaded and re-run.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Protocol

from neutrowatch import schemas, topics
from neutrowatch.detection import DetectionConfig, step
from neutrowatch.domain.events import Event, LabResult, Rejection, Source, event_from_record
from neutrowatch.domain.timing import DEFAULT_TOLERANCE, implausible_time
from neutrowatch.ingest.dead_letters import dead_letter
from neutrowatch.monitor.state_store import Commit, Loaded, StateStore
from neutrowatch.platform import metrics
from neutrowatch.platform.kafka import OutRecord

log = logging.getLogger(__name__)
SOURCE = Source("canonical", "neutrowatch-monitor")


class Sender(Protocol):
    async def send(self, records: list[OutRecord]) -> None:
        """Produce and wait for every acknowledgement; raise on any failure."""


@dataclass
class Decoded:
    event: Event
    ingested_at: float | None  # epoch seconds


@dataclass
class Health:
    """What the worker's readiness reads: is the last attempt failing, and is it advancing."""

    failing: str | None = None  # "redis" / "kafka" while a retry loop runs
    last_progress: float = field(default_factory=time.monotonic)
    processed: int = 0


class Processor:
    def __init__(self, store: StateStore, sender: Sender, config: DetectionConfig,
                 retry_max_seconds: float = 5.0, clock: Callable[[], datetime] | None = None,
                 stopping: Callable[[], bool] = lambda: False, state_cache_size: int = 4096,
                 future_tolerance: timedelta = DEFAULT_TOLERANCE):
        self.store, self.sender, self.config = store, sender, config
        self.future_tolerance = future_tolerance
        self.retry_max = retry_max_seconds
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.health = Health()
        self._stopping = stopping
        # as last committed, by patient, most recently used last; bounded because every state kept
        # is memory and work for the garbage collector's full passes (a long history is ~100 objects)
        self._states: OrderedDict[str, Loaded] = OrderedDict()
        self._states_max = state_cache_size

    # ------------------------------------------------------------------ entry points
    async def process(self, batch: list[tuple[str, bytes]]) -> None:
        """``batch``: (topic, value) in consumption order."""
        started = time.perf_counter()
        by_patient, rejects = self._decode(batch)
        await self._retry("kafka", lambda: self.sender.send(rejects))
        alerts = await self._retry("redis", lambda: self._step_and_commit(by_patient))
        await self.relay(alerts)
        elapsed = time.perf_counter() - started
        metrics.MONITOR_BATCH_SECONDS.observe(elapsed)
        if batch:
            per_event = elapsed / len(batch)
            for _ in batch:
                metrics.MONITOR_EVENT_SECONDS.observe(per_event)
        self.health.processed += len(batch)
        self.health.last_progress = time.monotonic()

    async def relay(self, alerts: list[tuple[dict[str, Any], float | None]]) -> None:
        """Alerts already in their outboxes: produce (keyed by patient), then index and clear."""
        if not alerts:
            return
        records = [OutRecord(topics.ALERTS, a["patient_key"], a) for a, _ in alerts]
        await self._retry("kafka", lambda: self.sender.send(records))
        now = time.time()
        for alert, ingested in alerts:
            metrics.MONITOR_ALERTS.labels(alert["kind"], alert["severity"]).inc()
            if ingested is not None:
                metrics.MONITOR_E2E_SECONDS.observe(max(0.0, now - ingested))
        await self._retry("redis", lambda: self.store.mark_sent([a for a, _ in alerts]))

    async def drain_outbox(self) -> int:
        """Send every alert committed but not yet acknowledged (after a crash, or a failed relay)."""
        sent = 0
        keys = await self._retry("redis", self.store.outbox_keys)
        metrics.MONITOR_OUTBOX.set(len(keys))
        for key in keys:
            pk = key[key.index("{") + 1:key.rindex("}")]
            pending = await self._retry("redis", lambda pk=pk: self.store.pending(pk))
            pending.sort(key=lambda a: (a["observed_at"], a["alert_id"]))
            await self.relay([(a, None) for a in pending])
            sent += len(pending)
        metrics.MONITOR_OUTBOX.set(0)
        return sent

    # ------------------------------------------------------------------ stages
    def _decode(self, batch: list[tuple[str, bytes]]
                ) -> tuple[dict[str, list[Decoded]], list[OutRecord]]:
        by_patient: dict[str, list[Decoded]] = {}
        rejects: list[OutRecord] = []
        for topic, n in Counter(topic for topic, _ in batch).items():
            metrics.MONITOR_EVENTS.labels(topic).inc(n)
        now = self.clock()
        for topic, value in batch:
            try:
                record = schemas.decode(value, topics.SCHEMA_OF_TOPIC.get(topic))
                event = event_from_record(record)
            except schemas.SchemaError as exc:
                code = "not_json" if exc.field == "(record)" else "schema_violation"
                rejects.append(self._reject(value, code, f"{exc.schema}: {exc.field}", exc.field))
                continue
            except (KeyError, TypeError, ValueError) as exc:
                rejects.append(self._reject(value, "schema_violation", type(exc).__name__, None))
                continue
            ahead = implausible_time(event, now, self.future_tolerance)
            if ahead is not None:  # a producer writing to the topic directly skipped ingest's check
                rejects.append(self._reject(value, ahead.code, ahead.reason, ahead.field))
                continue
            by_patient.setdefault(event.patient_key, []).append(
                Decoded(event, _epoch(record.get("ingested_at"))))
        return by_patient, rejects

    def _reject(self, value: bytes, code: str, reason: str, where: str | None) -> OutRecord:
        metrics.MONITOR_REJECTED.labels(code).inc()
        log.warning("monitor dead-lettered an input event: %s (%s)", code, where or "-")
        return dead_letter(value, Rejection(code, f"monitor refused the event: {reason}", where),
                           SOURCE, self.clock())

    async def _step_and_commit(self, by_patient: dict[str, list[Decoded]]
                               ) -> list[tuple[dict[str, Any], float | None]]:
        """Step each patient's events from its state and commit atomically; patients whose
        state changed meanwhile (another worker, after a rebalance) are reloaded and re-run."""
        out: list[tuple[dict[str, Any], float | None]] = []
        todo = dict(by_patient)
        states = self._states
        while todo:
            loaded: dict[str, Loaded] = {}
            missing = []
            for pk in todo:
                known = states.get(pk)
                if known is None:
                    missing.append(pk)
                else:
                    loaded[pk] = known
            if missing:
                loaded.update(await self.store.load_many(missing))
            commits, sent_with = [], []
            for pk, events in todo.items():
                commit, stamps = self._step_patient(loaded[pk], events)
                if commit is not None:
                    commits.append(commit)
                    sent_with.append(stamps)
                else:
                    self._remember(loaded[pk])
            versions = await self.store.commit_many(commits)
            retry: dict[str, list[Decoded]] = {}
            for commit, stamps, version in zip(commits, sent_with, versions):
                pk = commit.loaded.patient_key
                if version >= 0:
                    out += list(zip(commit.alerts, stamps))
                    self._remember(Loaded(pk, commit.state, version, commit.meta))
                else:
                    metrics.MONITOR_CONFLICTS.inc()
                    states.pop(pk, None)
                    retry[pk] = todo[pk]
            todo = retry
        return out

    def _remember(self, loaded: Loaded) -> None:
        states = self._states
        states[loaded.patient_key] = loaded
        states.move_to_end(loaded.patient_key)
        while len(states) > self._states_max:
            states.popitem(last=False)

    def _step_patient(self, loaded: Loaded, events: list[Decoded]
                      ) -> tuple[Commit | None, list[float | None]]:
        state, alerts, stamps = loaded.state, [], []
        derived = set(loaded.meta.get("derived", ()))
        for d in events:
            try:
                state, new = step(state, d.event, self.config)
            except Exception as exc:  # an engine defect must not block the partition
                metrics.MONITOR_REJECTED.labels("engine_error").inc()
                log.error("detection engine failed on an event (%s); skipped", type(exc).__name__)
                continue
            for a in new:
                alerts.append(a.to_record())
                stamps.append(d.ingested_at)
            if isinstance(d.event, LabResult) and d.event.provenance == "derived":
                derived.add(d.event.observation_id)
        if state == loaded.state and not alerts:
            return None, []  # a redelivery or an irrelevant event: nothing to write
        kept = derived.intersection(o.oid for o in state.anc) if derived else derived
        meta = {"derived": sorted(kept)} if kept else {}
        return Commit(loaded, state, alerts, meta), stamps

    async def _retry(self, dependency: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        delay = 0.1
        while True:
            try:
                result = await attempt()
                if self.health.failing == dependency:
                    log.info("%s is back; monitor resumes", dependency)
                    self.health.failing = None
                return result
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping():
                    raise
                if self.health.failing != dependency:
                    log.warning("%s unavailable (%s); monitor paused, retrying with back-off",
                                dependency, type(exc).__name__)
                self.health.failing = dependency
                metrics.MONITOR_RETRIES.labels(dependency).inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
