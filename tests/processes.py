"""Run `neutrowatch` as a real child process and always stop it (SIGTERM, bounded wait, SIGKILL)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from neutrowatch.platform.embedded import free_port

NEUTROWATCH = [sys.executable, "-m", "neutrowatch.cli"]


class Service:
    def __init__(self, args: list[str], env: dict[str, str] | None = None, log_dir: Path | None = None):
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = (log_dir or Path("/tmp")) / f"neutrowatch-{os.getpid()}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([*NEUTROWATCH, *self.args], env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM; returns how long it took to exit (SIGKILL after ``timeout``)."""
        assert self.proc is not None
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
        return time.monotonic() - started


def http_json(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return err.code, json.loads(body)
        except ValueError:
            return err.code, body.decode(errors="replace")


def wait_ready(http_port: int, service: Service, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise RuntimeError(f"neutrowatch exited early:\n{service.output()}")
        try:
            status, _ = http_json(f"http://127.0.0.1:{http_port}/readyz")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"neutrowatch not ready after {timeout}s:\n{service.output()}")


def start_up(kafka: str | None, redis: str | None, extra: list[str] | None = None,
             env: dict[str, str] | None = None) -> tuple[Service, int, int]:
    mllp_port, http_port = free_port(), free_port()
    args = ["up", "--mllp-port", str(mllp_port), "--http-port", str(http_port), *(extra or [])]
    if kafka:
        args += ["--kafka", kafka]
    if redis:
        args += ["--redis", redis]
    service = Service(args, env).start()
    try:
        wait_ready(http_port, service)
    except Exception:
        service.stop()
        raise
    return service, mllp_port, http_port
