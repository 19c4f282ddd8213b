"""`up` runs the monitor as a supervised child process (`neutrowatch monitor`): restarted with
back-off when it dies, stopped with SIGTERM, a bounded wait, then SIGKILL."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import aiohttp

from neutrowatch.platform.embedded import _die_with_parent, free_port
from neutrowatch.platform.settings import Settings

log = logging.getLogger(__name__)
_PASSED = ("kafka_bootstrap", "redis_url", "kafka_partitions", "kafka_replication_factor",
           "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username", "kafka_ssl_cafile",
           "kafka_ssl_certfile", "kafka_ssl_keyfile", "redis_username", "redis_ssl_ca_certs",
           "redis_cluster", "bind_host", "log_level", "produce_timeout_seconds",
           "detection_config_file")


class MonitorSupervisor:
    def __init__(self, settings: Settings, stop_timeout: float = 6.0):
        self.settings = settings
        self.port = settings.monitor_http_port or free_port()
        self.stop_timeout = stop_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._session: aiohttp.ClientSession | None = None

    def command(self) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEUTROWATCH_")
               or k.endswith("_PASSWORD")}
        for name in _PASSED:
            value = getattr(self.settings, name)
            if value is not None:
                env[f"NEUTROWATCH_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in self.settings.model_dump().items():  # the monitor_* tuning as given
            if name.startswith("monitor_") and name != "monitor_http_port":
                env[f"NEUTROWATCH_{name.upper()}"] = str(value)
        env["NEUTROWATCH_MONITOR_HTTP_PORT"] = str(self.port)
        return [sys.executable, "-m", "neutrowatch.cli", "monitor"], env

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        await self._spawn()
        self._task = asyncio.create_task(self._watch())

    async def _spawn(self) -> None:
        argv, env = self.command()
        self.proc = await asyncio.create_subprocess_exec(*argv, env=env, start_new_session=True,
                                                         preexec_fn=_die_with_parent)
        log.info("monitor worker started (pid %s, health port %s)", self.proc.pid, self.port)

    async def _watch(self) -> None:
        delay = 0.5
        while not self._stopping:
            assert self.proc is not None
            code = await self.proc.wait()
            if self._stopping:
                return
            self.restarts += 1
            log.warning("monitor worker exited with code %s; restarting in %.1fs", code, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.monitor_restart_max_seconds)
            if not self._stopping:
                await self._spawn()

    async def ready(self) -> bool:
        """The child's own /readyz (connected, in its group, advancing)."""
        if self.proc is None or self.proc.returncode is not None or self._session is None:
            return False
        async with self._session.get(f"http://127.0.0.1:{self.port}/readyz") as response:
            return response.status == 200

    async def metrics_text(self) -> bytes:
        """The child's neutrowatch_monitor_* metric families (for the shared /metrics)."""
        if self._session is None:
            return b""
        try:
            async with self._session.get(f"http://127.0.0.1:{self.port}/metrics") as response:
                text = await response.text()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return b""
        keep = []
        for line in text.splitlines():
            name = line.split(" ", 3)[2] if line.startswith("#") and len(line.split(" ")) > 2 else line
            if name.startswith("neutrowatch_monitor_"):
                keep.append(line)
        return ("\n".join(keep) + "\n").encode() if keep else b""

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self.stop_timeout)
            except asyncio.TimeoutError:
                log.warning("monitor worker did not stop in %.0fs; killing it", self.stop_timeout)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await proc.wait()
        if self._session is not None:
            await self._session.close()
