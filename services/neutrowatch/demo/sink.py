"""The demo's notification receivers: one small aiohttp server inside the demo process standing in
for the ward board, the on-call registrar and the consultant. It checks every delivery the way a
real receiver should (README, "Verifying a webhook") and remembers what it was told."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from aiohttp import web


@dataclass(frozen=True)
class Delivery:
    receiver: str
    purpose: str  # alert | escalation | retraction
    level: int
    delivery_id: str
    alert: dict  # the (most severe) alert of the message
    count: int = 1  # alerts in the message (notify may group one patient's alerts)


class WebhookSink:
    def __init__(self, secret: bytes, on_delivery: Callable[[Delivery], None] | None = None,
                 tolerance_seconds: float = 300):
        self.secret, self.tolerance = secret, tolerance_seconds
        self.on_delivery = on_delivery
        self.deliveries: list[Delivery] = []
        self._seen: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def verify(self, headers, body: bytes) -> bool:
        ts = headers.get("X-NeutroWatch-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        try:
            fresh = abs(time.time() - int(ts)) <= self.tolerance
        except ValueError:
            return False
        return fresh and hmac.compare_digest(expected, headers.get("X-NeutroWatch-Signature", ""))

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self.verify(request.headers, body):
            return web.json_response({"error": "bad signature"}, status=401)
        payload = json.loads(body)
        delivery_id = request.headers.get("X-NeutroWatch-Delivery") or payload.get("delivery_id", "")
        if delivery_id in self._seen:  # at-least-once delivery: a repeat carries the same id
            return web.json_response({"duplicate": True})
        self._seen.add(delivery_id)
        delivery = Delivery(request.match_info["receiver"], payload.get("purpose", "alert"),
                            int(payload.get("level") or 0), delivery_id, payload.get("alert") or {},
                            int(payload.get("count") or 1))
        self.deliveries.append(delivery)
        if self.on_delivery is not None:
            self.on_delivery(delivery)
        return web.json_response({"received": True})

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.add_routes([web.post("/hooks/{receiver}", self._receive)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return f"http://{host}:{self.port}/hooks"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def counts(self) -> Counter:
        return Counter((d.receiver, d.purpose) for d in self.deliveries)
