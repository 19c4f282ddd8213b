"""The demo, in order: settings -> embedded servers -> pipeline (+ webhook receivers) -> ready ->
replay with a progress bar, each alert printed as it lands -> summary and URLs -> Ctrl-C."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterator, TextIO

import aiohttp
from pydantic import SecretStr

from neutrowatch.demo import dataset
from neutrowatch.demo.console import Console, delivery_line, patient_url
from neutrowatch.demo.feeds import Feeds
from neutrowatch.demo.sink import Delivery, WebhookSink
from neutrowatch.demo.watch import AlertTail, MonitorProgress
from neutrowatch.platform.embedded import free_port
from neutrowatch.platform.settings import Settings

log = logging.getLogger(__name__)
SECRET_ENV = "NEUTROWATCH_DEMO_WEBHOOK_SECRET"
READY_TIMEOUT = 90.0
SECTION_SETTLE_TIMEOUT = 20.0
DELIVERY_SETTLE_TIMEOUT = 20.0


def process_started() -> float:
    """Wall-clock time this process started (Linux /proc; elsewhere: now)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def prepare(settings: Settings, run_dir: Path, sink_url: str) -> tuple[Settings, str]:
    """The demo's settings: its detection config (the BEN patient's baseline), a routing file to
    its own webhook receivers, a per-run API token, free ports where the defaults are taken."""
    given = settings.model_fields_set
    updates: dict = {}
    if settings.detection_config_file is None:
        updates["detection_config_file"] = dataset.DETECTION_CONFIG
    if settings.local_codes_file is None and dataset.LOCAL_CODES.exists():
        updates["local_codes_file"] = dataset.LOCAL_CODES
    for name in ("http_port", "mllp_port"):
        port = getattr(settings, name)
        if port == 0 or (name not in given and not _port_free(settings.bind_host, port)):
            updates[name] = free_port()
    if settings.notify_routing_file is None:
        routing = run_dir / "routing.yaml"
        routing.write_text(dataset.ROUTING_TEMPLATE.read_text(encoding="utf-8").replace("${DEMO_SINK}", sink_url),
                           encoding="utf-8")
        updates["notify_routing_file"] = routing
    token = settings.notify_api_token.get_secret_value() if settings.notify_api_token else secrets.token_urlsafe(18)
    updates["notify_api_token"] = SecretStr(token)
    if settings.notify_ack_secret is None:
        updates["notify_ack_secret"] = SecretStr(secrets.token_urlsafe(32))
    settings = settings.model_copy(update=updates)
    if "notify_public_url" not in given:
        settings = settings.model_copy(update={"notify_public_url": f"http://{_host(settings)}:{settings.http_port}"})
    return settings, token


def _host(settings: Settings) -> str:
    return "127.0.0.1" if settings.bind_host in ("0.0.0.0", "::", "") else settings.bind_host


@contextlib.contextmanager
def service_logs(path: Path | None) -> Iterator[None]:
    """Everything written to standard error (this process's logs, the monitor worker's, warnings)
    goes to ``path`` while the demo runs, so the terminal shows only the demo."""
    if path is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run(settings: Settings, args: argparse.Namespace | None = None, out: TextIO = sys.stdout) -> int:
    from neutrowatch.platform.kafka import ensure_topics
    from neutrowatch.up import servers

    opts = args or argparse.Namespace()
    started = process_started()
    console = Console(out)
    run_dir = Path(tempfile.mkdtemp(prefix="neutrowatch-demo-"))
    log_opt = getattr(opts, "log_file", None)
    log_path = None if log_opt == "-" else Path(log_opt) if log_opt else run_dir / "services.log"
    sink_port = free_port()
    secret = secrets.token_hex(32)
    os.environ[SECRET_ENV] = secret  # the routing file names this variable; the monitor child drops it
    demo_routing = settings.notify_routing_file is None
    settings, token = prepare(settings, run_dir, f"http://127.0.0.1:{sink_port}/hooks")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # before the event loop: clean up too

    console.line(console.paint("NeutroWatch demo", "\033[1m") + " — neutropenia monitoring on HL7 v2 / FHIR feeds, "
                 "with synthetic patients")
    if log_path is not None:
        console.line(f"service logs (no patient identifiers): {log_path}")
    try:
        with service_logs(log_path):
            try:
                with servers(settings, out) as resolved:
                    ensure_topics(resolved)
                    return asyncio.run(Demo(resolved, opts, console, started, secret.encode(), token, sink_port,
                                            demo_routing).main())
            except Exception:
                log.exception("neutrowatch demo failed")  # the traceback goes to the service log
                raise
    except KeyboardInterrupt:
        console.line("stopped")
        return 130
    except Exception as exc:  # the terminal shows the demo only: say what failed and where the logs are
        console.line(f"neutrowatch demo failed: {type(exc).__name__}: {exc}")
        if log_path is not None:
            console.line(f"see the service logs: {log_path}")
        return 1
    finally:
        if log_path is None or run_dir not in log_path.parents:
            shutil.rmtree(run_dir, ignore_errors=True)


def _exit_on_sigterm(_signum, _frame):
    raise SystemExit(143)


class Demo:
    def __init__(self, settings: Settings, opts: argparse.Namespace, console: Console, started: float,
                 secret: bytes, token: str, sink_port: int, demo_routing: bool = True):
        self.s, self.opts, self.console, self.started = settings, opts, console, started
        self.token, self.sink_port = token, sink_port
        self.base = f"http://{_host(settings)}:{settings.http_port}"
        self.sections = dataset.sections(include_samples=not getattr(opts, "no_samples", False))
        self.section_of = {s.key: s for s in self.sections if s.key}
        self.alerts: list[dict] = []
        self.first_alert_after: float | None = None
        self.live = False  # after the replay: print deliveries (escalations) as they come
        self.sink = WebhookSink(secret, on_delivery=self._delivered)
        self.demo_routing = demo_routing  # notify delivers to the receivers below, per data/routing.yaml
        self.stop = asyncio.Event()

    # ------------------------------------------------------------------ callbacks
    def _alert(self, alert: dict) -> None:
        self.alerts.append(alert)
        self.console.alert(alert)
        if self.first_alert_after is None:
            self.first_alert_after = time.time() - self.started
            self.console.line(self.console.paint(
                f"  ↑ first alert {self.first_alert_after:.0f} s after the demo started", "\033[2m"))

    def _delivered(self, d: Delivery) -> None:
        if self.live:
            self.console.line(delivery_line(d.receiver, d.purpose, d.level, d.alert, d.count))

    # ------------------------------------------------------------------ the run
    async def main(self) -> int:
        from neutrowatch.up import Pipeline
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        await self.sink.start(port=self.sink_port)
        pipeline = Pipeline(self.s)
        tail = AlertTail(self.s, self._alert)
        try:
            await pipeline.start(io.StringIO())  # its own start-up lines: the demo says it shorter
            self.console.line(f"ingest: HL7 v2 MLLP on {_host(self.s)}:{pipeline.ingest.mllp.port}, "
                              f"FHIR and the pages on {self.base}; monitor worker pid {pipeline.monitor.proc.pid}; "
                              "notify → the demo's webhook receivers")
            if not await self._until(self._ready(), READY_TIMEOUT):
                if not self.stop.is_set():
                    self.console.line(f"the pipeline did not become ready in {READY_TIMEOUT:.0f} s ({self.base}/readyz)")
                    return 1
                return 130
            await tail.start()
            progress = MonitorProgress(pipeline.monitor.metrics_text, tail)
            replay = await self._until(self._replay(progress), None)
            if replay is None:
                return 130
            await self._until(self._deliveries(), DELIVERY_SETTLE_TIMEOUT)
            self._summary(replay)
            leaving = getattr(self.opts, "exit_after_replay", False) or self.stop.is_set()
            self._urls(leaving)
            if leaving:
                self.console.line("stopping everything now" + (" (--exit-after-replay)" if not self.stop.is_set() else ""))
                return 0
            self.live = True
            self.console.line("running — Ctrl-C stops everything")
            await self.stop.wait()
            self.console.line("\nstopping")
            return 0
        finally:
            await tail.stop()
            await pipeline.stop()
            await self.sink.stop()

    async def _until(self, coro, timeout: float | None):
        """Run ``coro`` until it ends, ``timeout`` passes (-> None) or Ctrl-C (-> None)."""
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self.stop.wait())
        done, _ = await asyncio.wait({task, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None

    async def _ready(self) -> bool:
        self.console.line("waiting for the monitor worker and notify to join their consumer groups …")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                try:
                    async with session.get(self.base + "/readyz") as response:
                        if response.status == 200:
                            return True
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    pass
                await asyncio.sleep(0.25)

    async def _replay(self, progress: MonitorProgress) -> dict:
        from tqdm import tqdm
        speed = float(getattr(self.opts, "speed", 10.0) or 0)
        interval = 1.0 / speed if speed > 0 else 0.0
        total = sum(len(s.items) for s in self.sections)
        stats: Counter = Counter()
        began, paced = time.monotonic(), True
        self.console.line(f"replaying {total} messages: {len(self.section_of)} synthetic patients, then the "
                          "public sample messages; each alert is printed as it fires "
                          "(time = specimen collection)")
        tty = self.console.out.isatty()  # piped (CI, tee): no bar, the headings say how many
        bar = tqdm(total=total, unit="msg", file=self.console.out, leave=True, dynamic_ncols=True, disable=not tty,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} messages [{elapsed}]")
        if tty:
            self.console.attach(bar)
        try:
            async with Feeds(self.s.mllp_port, self.base) as feeds:
                for section in self.sections:
                    bar.set_description_str(f"replay: {section.title[:24]:24}")
                    who = f" · {section.key}" if section.key else ""
                    self.console.heading(f"── {section.title}{who} ({len(section.items)} messages)")
                    self.console.line(self.console.paint(f"   {section.story}", "\033[2m"))
                    self.console.line(self.console.paint(f"   {section.feed}", "\033[2m"))
                    for item in section.items:
                        t0 = time.monotonic()
                        outcome = await feeds.send(item)
                        stats[(item.channel, outcome.accepted)] += 1
                        if not outcome.accepted:
                            self.console.line(self.console.paint(
                                f"   refused {item.label}: {outcome.answer} — {outcome.reason or 'no reason given'}",
                                "\033[2m"))
                        # the next message only once the monitor took this one: each alert follows
                        # the message that caused it, and one patient's events stay in order
                        if paced and not await progress.consumed_all(timeout=10):
                            paced = False  # e.g. the worker restarted (its counters too): just send
                            self.console.line("   (the monitor worker is not keeping up: sending without waiting for it)")
                        bar.update(1)
                        await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))
                    await progress.settled(timeout=SECTION_SETTLE_TIMEOUT)
        finally:
            bar.close()
            self.console.detach()
        stats["seconds"] = time.monotonic() - began
        return stats

    async def _deliveries(self) -> None:
        """Wait until notify has taken every alert and its deliveries (after group_wait) stop coming."""
        from prometheus_client import REGISTRY
        def consumed() -> float:
            return sum(REGISTRY.get_sample_value("neutrowatch_notify_alerts_consumed_total", {"outcome": o}) or 0
                       for o in ("accepted", "redelivered", "retraction", "rejected"))
        while consumed() < len(self.alerts):
            await asyncio.sleep(0.1)
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() - quiet_since < 4.0:  # the warnings' group_wait is 3 s
            if len(self.sink.deliveries) != last:
                last, quiet_since = len(self.sink.deliveries), time.monotonic()
            await asyncio.sleep(0.1)

    # ------------------------------------------------------------------ the end
    def _summary(self, stats: dict) -> None:
        c = self.console
        hl7 = stats[("hl7", True)] + stats[("hl7", False)]
        fhir = stats[("fhir", True)] + stats[("fhir", False)]
        refused = stats[("hl7", False)] + stats[("fhir", False)]
        c.heading("── summary")
        c.line(f"replayed {hl7 + fhir} messages in {stats['seconds']:.1f} s: {hl7} HL7 v2 over MLLP, {fhir} FHIR R4 "
               f"over HTTP; {hl7 + fhir - refused} accepted, {refused} refused with the reason"
               + (" (public samples without a collection time)" if refused else ""))
        per = Counter(a.get("patient_key") for a in self.alerts)
        pages = Counter(a.get("patient_key") for a in self.alerts if a.get("severity") == "critical")
        parts = []
        for section in self.sections:
            if section.key:
                n = per.get(section.key, 0)
                parts.append(f"{section.key} {n} ({pages.get(section.key, 0)} paged)"
                             + (" (quiet: her own baseline is in the demo's detection config)"
                                if not section.expect and n == 0 else ""))
        samples = sum(n for k, n in per.items() if k not in self.section_of)
        sample_pages = sum(n for k, n in pages.items() if k not in self.section_of)
        c.line(f"{len(self.alerts)} alerts, {sum(pages.values())} critical pages: " + ", ".join(parts)
               + f", public samples {samples} ({sample_pages} paged)")
        if self.first_alert_after is not None:
            c.line(f"first alert after {self.first_alert_after:.0f} s (from the start of `neutrowatch demo`)")
        sent = Counter(d.receiver for d in self.sink.deliveries)
        suppressed = _suppressed()
        covered = sum(d.count for d in self.sink.deliveries)
        c.line(f"notify: {len(self.sink.deliveries)} notifications ({covered} alerts) delivered to the demo's "
               "webhook receivers (" + ", ".join(f"{r} {n}" for r, n in sorted(sent.items()))
               + "), every signature verified"
               + ("; not sent: " + ", ".join(f"{n} {r}" for r, n in sorted(suppressed.items())) if suppressed else ""))

    def _urls(self, leaving: bool) -> None:
        c, base = self.console, self.base
        c.heading("── open in a browser" + (" (while the demo runs: without --exit-after-replay)" if leaving else ""))
        width = max([len(s.title) for s in self.sections if s.key] + [22]) + 2
        c.line(f"  {'alerts (acknowledge here)':{width}} {base}/alerts")
        for s in self.sections:
            if s.key:
                c.line(f"  {s.title:{width}} {patient_url(base, s.key)}")
        c.line(f"  {'metrics (Prometheus)':{width}} {base}/metrics")
        c.line(f"  {'API (OpenAPI)':{width}} {base}/openapi.json")
        c.line("")
        c.line(f"acknowledge token (this run only): {self.token}")
        c.line(f"  paste it on the alerts page, or: curl -X POST -H 'Authorization: Bearer {self.token}' "
               f"-H 'Content-Type: application/json' -d '{{\"by\": \"you\"}}' {base}/alerts/<alert_id>/ack")
        if self.demo_routing:
            c.line("critical alerts not acknowledged within 5 minutes escalate to haem-consultant (printed here)")
        c.line(f"send your own: HL7 v2 over MLLP to {_host(self.s)}:{self.s.mllp_port}, FHIR R4 to {base}/fhir")


def _suppressed() -> Counter:
    """notify's reasons for not sending (inhibited_by_critical, duplicate, ...) in this process."""
    from prometheus_client import REGISTRY
    out: Counter = Counter()
    for family in REGISTRY.collect():
        if family.name == "neutrowatch_notify_notifications_suppressed":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.value:
                    out[sample.labels.get("reason", "?")] += int(sample.value)
    return out
