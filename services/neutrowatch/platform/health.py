"""Liveness (/healthz: the process answers) and readiness (/readyz: every dependency and worker
is connected), as named checks so an operator sees which one failed."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from neutrowatch.platform import metrics

Check = Callable[[], Awaitable[bool]]


class Readiness:
    def __init__(self, timeout_seconds: float = 2.0):
        self._checks: dict[str, Check] = {}
        self._timeout = timeout_seconds

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    async def report(self) -> dict[str, bool]:
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(self._checks[n]) for n in names))
        for name, ok in zip(names, results):
            metrics.READY.labels(name).set(1 if ok else 0)
        return dict(zip(names, results))

    async def _run(self, check: Check) -> bool:
        try:
            return bool(await asyncio.wait_for(check(), self._timeout))
        except Exception:  # a check that fails in any way means not ready
            return False
