"""`neutrowatch up`: the whole pipeline as it exists, in the foreground, stopped by SIGINT/SIGTERM."""
from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Iterator, TextIO

from neutrowatch.ingest.service import IngestService
from neutrowatch.platform.embedded import EmbeddedKafka, EmbeddedRedis
from neutrowatch.platform.health import Readiness
from neutrowatch.platform.http import HttpServer, build_app
from neutrowatch.platform.kafka import ensure_topics
from neutrowatch.platform.redis import connect_redis
from neutrowatch.notify.receivers import ConfigError
from neutrowatch.notify.routing import RoutingError
from neutrowatch.platform.settings import Settings


@contextlib.contextmanager
def servers(settings: Settings, out: TextIO) -> Iterator[Settings]:
    """The configured Kafka and Redis, or embedded ones started (and always stopped) here."""
    started, updates = [], {}
    try:
        if not settings.kafka_bootstrap:
            kafka = EmbeddedKafka(settings.kafka_port).start()
            started.append(kafka)
            updates["kafka_bootstrap"] = kafka.bootstrap
            print(f"embedded Kafka-protocol broker (Tansu, in memory) at {kafka.bootstrap}", file=out)
        if not settings.redis_url:
            redis = EmbeddedRedis(settings.redis_port).start()
            started.append(redis)
            updates["redis_url"] = redis.url
            print(f"embedded redis-server at {redis.url}", file=out)
        yield settings.model_copy(update=updates)
    finally:
        for server in reversed(started):
            server.stop()


class Pipeline:
    """Every service of the pipeline, sharing one HTTP server; the monitor runs as a supervised
    child process (`neutrowatch monitor`) whose readiness and metrics show here."""

    def __init__(self, settings: Settings):
        from neutrowatch.analyze import load_config
        from neutrowatch.monitor.api import MonitorApi
        from neutrowatch.monitor.state_store import StateStore
        from neutrowatch.monitor.supervisor import MonitorSupervisor
        from neutrowatch.notify.service import for_pipeline as notify_for_pipeline
        from neutrowatch.web import register as register_pages

        readiness = Readiness()
        self.monitor = MonitorSupervisor(settings) if settings.up_monitor else None  # else: monitors run apart
        app = build_app(readiness, settings.max_message_bytes,
                        extra_metrics=[self.monitor.metrics_text] if self.monitor else [])
        self.redis = connect_redis(settings)  # one client for ingest and the API
        self.ingest = IngestService(settings, app, readiness, self.redis)
        api = MonitorApi(StateStore(self.redis), load_config(settings.detection_config_file),
                         settings.api_page_size_max)
        app.add_routes(api.routes())
        register_pages(app, api, self.redis, settings)  # /patients/{key} and /alerts for browsers, /static
        if self.monitor is not None:
            readiness.add("monitor", self.monitor.ready)
        self.notify = notify_for_pipeline(settings, app, readiness)  # None without a routing file
        self.http = HttpServer(app, settings.bind_host, settings.http_port)
        self.host = settings.bind_host

    async def start(self, out: TextIO) -> None:
        await self.http.start()
        await self.ingest.start()
        if self.monitor is not None:
            await self.monitor.start()
        if self.notify is not None:
            await self.notify.start()
        print(f"MLLP (HL7 v2) listening on {self.host}:{self.ingest.mllp.port}", file=out)
        if self.monitor is not None:
            print(f"monitor worker pid {self.monitor.proc.pid} (health on port {self.monitor.port})", file=out)
        else:
            print("monitor: not started here (--no-up-monitor; run `neutrowatch monitor` workers)", file=out)
        print(f"HTTP listening on http://{self.host}:{self.http.port} "
              "(/fhir, /alerts, /patients, /openapi.json, /healthz, /readyz, /metrics)", file=out)
        print("notify: " + ("delivering per the routing file" if self.notify else
                            "off (set --notify-routing-file to deliver alerts)"), file=out, flush=True)

    async def stop(self) -> None:
        if self.notify is not None:
            await self.notify.stop()
        if self.monitor is not None:
            await self.monitor.stop()
        await self.ingest.stop()
        await self.http.stop()
        await self.redis.aclose()


async def serve(settings: Settings, out: TextIO) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    pipeline = Pipeline(settings)
    try:
        await pipeline.start(out)
        await stop.wait()
        print("stopping", file=out, flush=True)
    finally:
        await pipeline.stop()


def run(settings: Settings, out: TextIO = sys.stdout) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # until the event loop takes over: clean up too
    with servers(settings, out) as resolved:
        created = ensure_topics(resolved)
        if created:
            print(f"created topics: {', '.join(created)}", file=out)
        try:
            asyncio.run(serve(resolved, out))
        except (RoutingError, ConfigError) as exc:  # a bad routing file stops `up` with its line
            print(f"neutrowatch up: {exc}", file=sys.stderr, flush=True)
            return 2
    return 0


def _exit_on_sigterm(_signum, _frame):
    raise SystemExit(143)
