"""Real receivers for notify integration tests: an SMTP server (aiosmtpd), a webhook server
(aiohttp, in its own thread) that verifies the signature and stand-ins for PagerDuty's and
Opsgenie's HTTP APIs; plus alert records and a producer."""
from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import json
import threading
import time
import uuid
from email import policy

from aiohttp import web
from aiosmtpd.controller import Controller
from kafka import KafkaProducer

from neutrowatch import schemas, topics
from neutrowatch.domain.ids import stable_id
from neutrowatch.platform.embedded import free_port

WEBHOOK_SECRET = "test-webhook-secret-\u00e9"


def wait_until(condition, timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    return condition()


class Mailbox:
    """aiosmtpd on a free port; ``messages`` are parsed emails. For an alert id in ``slow_once``
    the first email about it is kept and answered only after that many seconds (the sender times
    out not knowing whether the mail went through). A recipient in ``refuse`` is answered with
    that SMTP reply (e.g. "452 mailbox busy") at RCPT TO."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.slow_once: dict[str, float] = {}
        self.refuse: dict[str, str] = {}
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        self.messages.append(msg)
        text = msg.get_content()
        for alert_id in [a for a in self.slow_once if a in text]:
            await asyncio.sleep(self.slow_once.pop(alert_id))
        return "250 OK"

    def about(self, alert_id: str, to: str | None = None, raw: bool = False) -> list:
        """Emails about the alert, one per Message-ID (a receiver's dedup) unless ``raw``."""
        found, seen = [], set()
        for m in self.messages:
            if alert_id in m.get_content() and (to is None or to in m["X-Envelope-To"]):
                if raw or m["Message-ID"] not in seen:
                    found.append(m)
                seen.add(m["Message-ID"])
        return found

    def start(self) -> "Mailbox":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def alert_ids(payload: dict) -> list[str]:
    """The alerts a webhook body is about (``alerts`` lists them all; a grouped message has several)."""
    return [e["alert_id"] for e in payload.get("alerts") or [{"alert_id": payload["alert"]["alert_id"]}]]


class _ThreadedApp:
    """An aiohttp server on a free port, in its own thread and event loop (the code under test may
    post from worker threads with blocking clients)."""

    def __init__(self):
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def routes(self) -> list:
        raise NotImplementedError

    async def _start(self):
        app = web.Application()
        app.add_routes(self.routes())
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self):
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class Webhook(_ThreadedApp):
    """aiohttp server that accepts only correctly signed bodies (401 otherwise), answers 503 for
    alert ids in ``failing`` and, for alert ids in ``slow``, records the body and then waits that
    many seconds before answering (a receiver that has the message while notify still waits)."""

    def __init__(self, secret: str = WEBHOOK_SECRET):
        super().__init__()
        self.secret = secret.encode()
        self.received: list[dict] = []
        self.headers: list[dict] = []  # of each received body, same order
        self.attempts: list[str] = []
        self.bad_signatures = 0
        self.failing: set[str] = set()
        self.slow: dict[str, float] = {}
        self.events: list[tuple[float, str, str, str]] = []  # (time, received|answered, delivery id, purpose)

    def routes(self) -> list:
        return [web.post("/hook", self._hook)]

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        ts = request.headers.get("X-NeutroWatch-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-NeutroWatch-Signature", "")) \
                or abs(time.time() - int(ts or 0)) > 300:
            self.bad_signatures += 1
            return web.Response(status=401)
        payload = json.loads(body)
        ids = alert_ids(payload)
        self.attempts.extend(ids)
        if any(i in self.failing for i in ids):
            return web.Response(status=503)
        self.received.append(payload)
        self.headers.append(dict(request.headers))
        self.events.append((time.monotonic(), "received", payload["delivery_id"], payload["purpose"]))
        delay = max([self.slow.get(i, 0.0) for i in ids])
        if delay:
            await asyncio.sleep(delay)
        self.events.append((time.monotonic(), "answered", payload["delivery_id"], payload["purpose"]))
        return web.Response(status=204)

    def when(self, event: str, delivery_id: str) -> float | None:
        return next((t for t, e, d, _ in self.events if e == event and d == delivery_id), None)

    def about(self, alert_id: str, purpose: str | None = None, raw: bool = False) -> list[dict]:
        """Deliveries of the alert, one per X-NeutroWatch-Delivery id (a receiver's dedup) unless ``raw``."""
        found, seen = [], set()
        for p in self.received:
            if alert_id in alert_ids(p) and (purpose is None or p["purpose"] == purpose):
                if raw or p["delivery_id"] not in seen:
                    found.append(p)
                seen.add(p["delivery_id"])
        return found


class PagingServices(_ThreadedApp):
    """Stand-ins for PagerDuty's Events v2 API (``POST /v2/enqueue``) and Opsgenie's Alert API
    (``POST /v2/alerts`` creates; ``POST /v2/alerts/{identifier}/close|acknowledge|notes`` with
    ``identifierType``), answering as they do (202 and JSON). Every request is recorded as
    {service, method, path, query, body, auth, status}; a PagerDuty event whose routing_key is in
    ``failing`` is answered 503 (and recorded so). Apprise posts to fixed hosts: the test points
    apprise's URL constants at ``pagerduty_url`` / ``opsgenie_url``."""

    def __init__(self):
        super().__init__()
        self.requests: list[dict] = []
        self.failing: set[str] = set()

    @property
    def pagerduty_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/enqueue"

    @property
    def opsgenie_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/alerts"

    def routes(self) -> list:
        return [web.post("/v2/enqueue", self._pagerduty), web.route("*", "/v2/alerts{rest:.*}", self._opsgenie)]

    async def _record(self, service: str, request: web.Request) -> dict:
        raw = await request.read()
        rec = {"service": service, "method": request.method, "path": request.path, "query": dict(request.query),
               "body": json.loads(raw) if raw else None, "auth": request.headers.get("Authorization"), "status": 202}
        self.requests.append(rec)
        return rec

    async def _pagerduty(self, request: web.Request) -> web.Response:
        rec = await self._record("pagerduty", request)
        event = rec["body"]
        if event.get("routing_key") in self.failing:
            rec["status"] = 503
            return web.json_response({"status": "unavailable"}, status=503)
        return web.json_response({"status": "success", "message": "Event processed",
                                  "dedup_key": event.get("dedup_key")}, status=202)

    async def _opsgenie(self, request: web.Request) -> web.Response:
        await self._record("opsgenie", request)
        return web.json_response({"result": "Request will be processed", "took": 0.01,
                                  "requestId": str(uuid.uuid4())}, status=202)

    def pagerduty(self, routing_key: str | None = None) -> list[dict]:
        """Event bodies PagerDuty accepted (for one integration key)."""
        return [r["body"] for r in self.requests if r["service"] == "pagerduty" and r["status"] == 202
                and (routing_key is None or r["body"].get("routing_key") == routing_key)]

    def opsgenie(self) -> list[dict]:
        return [r for r in self.requests if r["service"] == "opsgenie"]


def alert(patient: str | None = None, kind: str = "agranulocytosis", severity: str = "critical",
          observed_at: str = "2026-03-01T08:00:00Z", retracts: str | None = None) -> dict:
    patient = patient or f"P{uuid.uuid4().hex[:10]}"
    rec = {"schema": "neutrowatch.alert.v1", "alert_id": stable_id("test", uuid.uuid4().hex),
           "patient_id": patient, "patient_key": f"TESTHOSP|{patient}", "kind": kind, "severity": severity,
           "observed_at": observed_at, "summary": f"Agranulocytosis: new episode, ANC 80 (< 100/uL) for {patient}.",
           "evidence": {"rule": kind}}
    if retracts:
        rec.update(kind="alert_retracted", severity="info", retracts_alert_id=retracts,
                   summary="Retracted: the alert no longer holds.",
                   evidence={"rule": "alert_retracted", "retracted_alert_id": retracts})
    return rec


class AlertProducer:
    def __init__(self, bootstrap: str):
        self._p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", key_serializer=str.encode)

    def send(self, *records: dict) -> None:
        for r in records:
            self._p.send(topics.ALERTS, key=r["patient_key"], value=schemas.encode(r))
        self._p.flush(15)

    def close(self) -> None:
        self._p.close(5)
