"""`neutrowatch monitor`: one faust worker of the consumer group ``neutrowatch-monitor``.

The agent is thin: it takes batches of events without acknowledging them (``noack_take``), hands
them to the Processor (decode -> engine step -> atomic Redis commit -> alerts on Kafka) and acks
them only once that returned, so faust commits an offset only after the state and the alerts are
durable. Before the first batch, alerts left in the Redis outbox by a crash are sent.

The worker serves its own /healthz, /readyz and /metrics on ``monitor_http_port``; /readyz is 200
only while Redis and Kafka answer, the worker joined its group, no retry loop is running and it is
advancing (no events waiting on its partitions with nothing processed for ``monitor_stall_seconds``:
the stalled-consumer problem of faust #523/#175).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import tempfile
import threading
import time
from typing import Any

import faust
from aiohttp import web

from neutrowatch import schemas, topics
from neutrowatch.analyze import load_config
from neutrowatch.monitor.processor import Processor
from neutrowatch.monitor.state_store import StateStore
from neutrowatch.platform import metrics
from neutrowatch.platform.health import Readiness
from neutrowatch.platform.http import HttpServer, build_app
from neutrowatch.platform.kafka import OutRecord, ensure_topics
from neutrowatch.platform.redis import connect_redis
from neutrowatch.platform.settings import Settings

log = logging.getLogger(__name__)
APP_ID = "neutrowatch-monitor"
INPUTS = (topics.LAB_RESULTS, topics.MEDICATION_ADMINISTRATIONS)


def faust_app(settings: Settings) -> faust.App:
    brokers = [f"kafka://{h.strip()}" for h in (settings.kafka_bootstrap or "").split(",") if h.strip()]
    return faust.App(
        APP_ID, broker=brokers, broker_credentials=_credentials(settings),
        value_serializer="raw", key_serializer="raw", autodiscover=False,
        datadir=tempfile.mkdtemp(prefix="neutrowatch-monitor-"), store="memory://",
        web_enabled=bool(settings.monitor_web_port), web_port=settings.monitor_web_port or 6066,
        web_bind=settings.bind_host,
        broker_rebalance_timeout=settings.monitor_rebalance_timeout_seconds,
        broker_session_timeout=settings.monitor_session_timeout_seconds,
        broker_heartbeat_interval=settings.monitor_heartbeat_seconds,
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        topic_allow_declare=False, consumer_auto_offset_reset="earliest", producer_acks=-1,
    )


def _credentials(settings: Settings):
    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    import ssl
    context = None
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(str(settings.kafka_ssl_certfile),
                                    str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None)
    if settings.kafka_sasl_mechanism:
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        if settings.kafka_sasl_mechanism == "PLAIN":
            return faust.SASLCredentials(username=settings.kafka_sasl_username, password=password,
                                         ssl_context=context)
        return faust.SASLCredentials(username=settings.kafka_sasl_username, password=password,
                                     mechanism=settings.kafka_sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context)


class FaustSender:
    """Produces records through the worker's producer and waits for every acknowledgement.

    Straight to the app's producer (the topics exist, keys are bytes, values serialised here):
    faust's Topic.send adds a future, sensor and debug-log round per message that the monitor
    does not use. The producer's partitioner places keyed records as Topic.send would."""

    def __init__(self, app: faust.App, timeout: float):
        self._app = app
        self._timeout = timeout

    async def send(self, records: list[OutRecord]) -> None:
        if not records:
            return
        producer = await self._app.maybe_start_producer()
        futures = [await producer.send(r.topic, r.key.encode(), schemas.encode(r.value), None, None, None)
                   for r in records]
        await asyncio.wait_for(asyncio.gather(*futures), self._timeout)


class MonitorRuntime:
    """Everything the agent needs, connected at start-up (never at import)."""

    def __init__(self, settings: Settings, app: faust.App):
        self.settings, self.app = settings, app
        self.started = asyncio.Event()
        self.stopping = False
        self.next_offset: dict[Any, int] = {}
        self.joined = False  # a rebalance completed: this worker is a group member
        self.redis = None
        self.processor: Processor | None = None
        self.http: HttpServer | None = None
        self._kafka_probe = None

    async def start(self) -> None:
        s = self.settings
        self.redis = connect_redis(s)
        store = StateStore(self.redis)
        self.processor = Processor(store, FaustSender(self.app, s.produce_timeout_seconds + 5),
                                   load_config(s.detection_config_file), s.monitor_retry_max_seconds,
                                   stopping=lambda: self.stopping, future_tolerance=s.future_tolerance)
        readiness = Readiness()
        readiness.add("redis", self.redis.ping)
        readiness.add("kafka", self._kafka_ready)
        readiness.add("group", self._joined)
        readiness.add("advancing", self._advancing)
        self.http = HttpServer(build_app(readiness, 1024 * 1024), s.bind_host, s.monitor_http_port)
        await self.http.start()
        log.info("monitor health on http://%s:%s (/healthz, /readyz, /metrics)", s.bind_host, self.http.port)
        drained = await self.processor.drain_outbox()
        if drained:
            log.info("sent %d alerts left in the outbox by an earlier run", drained)
        settle_gc()
        self.started.set()

    async def handle(self, events: list) -> None:
        assert self.processor is not None
        await self.processor.process([(e.message.topic, e.value) for e in events])
        for e in events:
            self.next_offset[e.message.tp] = e.message.offset + 1

    # ------------------------------------------------------------------ readiness
    async def _kafka_ready(self) -> bool:
        if self.processor is not None and self.processor.health.failing == "kafka":
            return False
        if self._kafka_probe is None:
            from aiokafka import AIOKafkaClient
            self._kafka_probe = AIOKafkaClient(client_id="neutrowatch-monitor-probe", request_timeout_ms=1500,
                                               **self.settings.aiokafka_client_config())
            await self._kafka_probe.bootstrap()
        await asyncio.wait_for(self._kafka_probe.fetch_all_metadata(), 1.5)
        return True

    async def _joined(self) -> bool:
        return self.started.is_set() and self.joined and not self.app.rebalancing

    async def _advancing(self) -> bool:
        assert self.processor is not None
        health = self.processor.health
        if health.failing:
            metrics.MONITOR_READY.set(0)
            return False
        waiting = await self.waiting()
        stalled = waiting > 0 and time.monotonic() - health.last_progress > self.settings.monitor_stall_seconds
        metrics.MONITOR_READY.set(0 if stalled else 1)
        return not stalled

    async def waiting(self) -> int:
        """Events on the assigned partitions past what was processed (as far as the broker's high
        watermark is right; Tansu under-reports it, which can only hide lag, never invent it)."""
        consumer = self.app.consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic in INPUTS]
        metrics.MONITOR_ASSIGNED.set(len(assigned))
        lag: dict[str, int] = {t: 0 for t in INPUTS}
        for tp in assigned:
            try:
                hw = consumer.highwater(tp)
                nxt = self.next_offset.get(tp)
                if nxt is None:
                    nxt = await consumer.position(tp)
            except Exception:
                continue
            if hw is not None and nxt is not None:
                lag[tp.topic] += max(0, hw - nxt)
        for topic, n in lag.items():
            metrics.MONITOR_LAG.labels(topic).set(n)
        return sum(lag.values())

    async def lag_loop(self) -> None:
        while True:
            await asyncio.sleep(5)
            try:
                await self.waiting()
            except Exception:  # metrics only
                pass


def settle_gc() -> None:
    """Everything allocated so far (modules, faust, aiokafka, the app) lives as long as the process:
    keep it out of the garbage collector's full passes, which otherwise traverse it again every few
    thousand events (measured: ~40 % of the worker's GC time). And a batch allocates tens of
    thousands of short-lived containers (decoded records, engine tuples), nearly none of them
    cyclic: at the default threshold (700) the collector ran ~25 times per 1,000 events and cost
    ~20 us per event (processor benchmark); at 50,000 it runs about once per 10,000 events and
    costs ~1 us, for a few MB more between passes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _set_fetch_wait(app: faust.App, ms: int) -> None:
    """faust hard-codes fetch_max_wait_ms=1500 for its aiokafka consumer; apply the setting to the
    running consumer's fetcher (best effort: a faust/aiokafka upgrade may move these internals)."""
    try:
        fetcher = app.consumer._thread._consumer._fetcher
        fetcher._fetch_max_wait_ms = ms
    except AttributeError:
        log.warning("could not apply monitor_fetch_max_wait_ms; faust's default 1500 ms stays")


def build(settings: Settings) -> tuple[faust.App, MonitorRuntime]:
    app = faust_app(settings)
    runtime = MonitorRuntime(settings, app)
    inputs = app.topic(*INPUTS, key_serializer="raw", value_serializer="raw",
                       partitions=settings.kafka_partitions)

    @app.on_rebalance_complete.connect
    async def on_joined(sender, **_kwargs) -> None:
        runtime.joined = True
        _set_fetch_wait(app, settings.monitor_fetch_max_wait_ms)

    @app.task
    async def start() -> None:
        await runtime.start()

    @app.task
    async def lag() -> None:
        await runtime.lag_loop()

    @app.agent(inputs, name="neutrowatch-monitor-agent")
    async def monitor(stream):
        await runtime.started.wait()
        async for events in stream.noack_take(settings.monitor_batch_size, within=settings.monitor_batch_seconds):
            await runtime.handle(events)
            for event in events:
                await stream.ack(event)

    return app, runtime


def run(settings: Settings, stop_seconds: float = 8.0) -> int:
    if not settings.kafka_bootstrap or not settings.redis_url:
        raise SystemExit("neutrowatch monitor: give --kafka and --redis (or their NEUTROWATCH_ variables)")
    ensure_topics(settings)
    app, runtime = build(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    # At WARNING or above faust keeps its terminal spinner, which sets the root logger to DEBUG so
    # that it spins on every record: every library's debug message was then built and handled
    # (about 3 % of the worker's CPU in the monitor benchmark). No spinner: levels stay as set.
    worker.spinner = None
    original = worker._on_sigterm

    def on_sigterm() -> None:
        # faust does not stop when the broker is gone (see environment notes): bound the wait
        runtime.stopping = True
        timer = threading.Timer(stop_seconds, lambda: os._exit(143))
        timer.daemon = True
        timer.start()
        original()

    worker._on_sigterm = on_sigterm  # type: ignore[method-assign]
    worker._on_sigint = on_sigterm  # type: ignore[method-assign]
    worker.execute_from_commandline()
    return 0
