"""A real three-master Redis Cluster from local redis-server processes (for integration tests)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from neutrowatch.platform.embedded import free_port, wait_for_port


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is also free: at most 55535."""
    while True:
        port = free_port()
        if port <= 55535 and _free(port + 10000):
            return port


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class LocalRedisCluster:
    def __init__(self, masters: int = 3):
        self.ports = [_cluster_port() for _ in range(masters)]
        self.dir = Path(tempfile.mkdtemp(prefix="nw-redis-cluster-"))
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def __enter__(self) -> "LocalRedisCluster":
        try:
            for port in self.ports:
                node_dir = self.dir / str(port)
                node_dir.mkdir()
                self.procs.append(subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                     "--cluster-config-file", "nodes.conf", "--dir", str(node_dir), "--save", "",
                     "--appendonly", "no"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for port, proc in zip(self.ports, self.procs):
                wait_for_port(port, 10, proc)
            subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                           "--cluster-replicas", "0", "--cluster-yes"],
                           check=True, capture_output=True, timeout=30)
            self._wait_ok()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ok(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"], capture_output=True,
                                    text=True, timeout=5).stdout for p in self.ports]
            if all("cluster_state:ok" in info for info in infos):
                return
            time.sleep(0.2)
        raise RuntimeError("Redis Cluster did not reach cluster_state:ok")

    def __exit__(self, *exc) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
