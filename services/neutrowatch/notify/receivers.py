"""Receiver adapters: email (SMTP), signed webhook (aiohttp), apprise (chat, paging). Each sends
one Message or raises DeliveryError; classification into retry / give up is decisions.classify.
Secrets (SMTP password, webhook keys, apprise URLs) are resolved at start-up and never logged."""
from __future__ import annotations

import asyncio
import logging
import os
import smtplib
import socket
import time
import urllib.parse
from collections import OrderedDict
from email.message import EmailMessage
from pathlib import Path
from typing import Callable, Protocol

import aiohttp

from neutrowatch.notify.decisions import DeliveryError
from neutrowatch.notify.messages import Message, webhook_body, webhook_signature
from neutrowatch.notify.routing import Receiver, Routing
from neutrowatch.platform.settings import Settings

logging.getLogger("apprise").setLevel(logging.ERROR)  # its messages can name notifier hosts


class ConfigError(RuntimeError):
    """A receiver cannot be set up (a secret is missing): `notify` refuses to start."""


class Sender(Protocol):
    type: str

    async def send(self, message: Message) -> None: ...


class PartlyDone:
    """Delivery id -> the recipients (or services) that took a message others refused, so that a
    retry goes only to the others. In memory and bounded: after a restart of notify, or for a
    message long forgotten, a retry goes to all again."""

    def __init__(self, size: int = 10_000):
        self._done: OrderedDict[str, set] = OrderedDict()
        self._size = size

    def get(self, delivery_id: str) -> set:
        return self._done.get(delivery_id, set())

    def keep(self, delivery_id: str, done: set) -> None:
        self._done[delivery_id] = done
        self._done.move_to_end(delivery_id)
        while len(self._done) > self._size:
            self._done.popitem(last=False)

    def forget(self, delivery_id: str) -> None:
        self._done.pop(delivery_id, None)


class EmailSender:
    type = "email"

    def __init__(self, to: list[str], settings: Settings):
        self.to, self.s = to, settings
        self._partly = PartlyDone()

    async def send(self, message: Message) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._send, message)

    def _send(self, message: Message) -> None:
        s = self.s
        did = message.payload["delivery_id"]
        done = self._partly.get(did)
        todo = [a for a in self.to if a not in done]
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = s.notify_smtp_from, ", ".join(self.to), message.subject
        mail["Message-ID"] = f"<{message.payload['delivery_id']}@neutrowatch>"
        if message.payload.get("redelivery"):
            mail["X-NeutroWatch-Redelivery"] = "possible-duplicate"
        mail.set_content(message.text)
        sent_data = False
        try:
            with smtplib.SMTP(s.notify_smtp_host, s.notify_smtp_port, timeout=s.notify_send_timeout_seconds) as smtp:
                if s.notify_smtp_starttls:
                    smtp.starttls()
                if s.notify_smtp_username:
                    smtp.login(s.notify_smtp_username,
                               s.notify_smtp_password.get_secret_value() if s.notify_smtp_password else "")
                sent_data = True  # from here on the server may have the message
                refused = smtp.send_message(mail, to_addrs=todo) or {}
        except smtplib.SMTPRecipientsRefused as exc:
            code = min(c for c, _ in exc.recipients.values())
            raise DeliveryError("smtp", code, "recipients refused") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError("smtp", exc.smtp_code, "server refused") from None
        except (socket.timeout, TimeoutError):
            raise DeliveryError("timeout", None, "SMTP timed out", maybe_delivered=True) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise DeliveryError("connection", None, type(exc).__name__, maybe_delivered=sent_data) from None
        if refused:  # accepted for the others: remember them, and fail for the refused ones
            self._partly.keep(did, done | {a for a in todo if a not in refused})
            code = min(c for c, _ in refused.values())
            raise DeliveryError("smtp", code, f"{len(refused)} of {len(todo)} recipients refused")
        self._partly.forget(did)


class WebhookSender:
    type = "webhook"

    def __init__(self, url: str, secret: bytes, timeout: float, session: Callable[[], aiohttp.ClientSession],
                 clock: Callable[[], float] = time.time):
        self.url, self._secret, self.timeout, self._session, self._clock = url, secret, timeout, session, clock

    async def send(self, message: Message) -> None:
        body = webhook_body(message)
        ts = str(int(self._clock()))
        headers = {"Content-Type": "application/json", "X-NeutroWatch-Timestamp": ts,
                   "X-NeutroWatch-Delivery": message.payload["delivery_id"],
                   "X-NeutroWatch-Signature": webhook_signature(self._secret, ts, body)}
        if message.payload.get("redelivery"):
            headers["X-NeutroWatch-Redelivery"] = "possible-duplicate"
        try:
            async with self._session().post(self.url, data=body, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                if resp.status >= 300:
                    raise DeliveryError("http", resp.status, "receiver answered an error")
        except asyncio.TimeoutError:
            raise DeliveryError("timeout", None, "webhook timed out", maybe_delivered=True) from None
        except aiohttp.ClientConnectorError as exc:  # never connected: the receiver has nothing
            raise DeliveryError("connection", None, type(exc).__name__) from None
        except aiohttp.ClientError as exc:  # connected, then lost: it may have the message
            raise DeliveryError("connection", None, type(exc).__name__, maybe_delivered=True) from None


# Apprise services with a per-event idempotency key, and the URL parameter apprise reads it from:
# PagerDuty Events v2 dedup_key (apprise `?dedup=`), Opsgenie alias (`?alias=`). Each message's
# delivery id goes there, so a re-send after a crash updates the same incident instead of paging
# twice. Other apprise services (chat, ntfy, ...) have no such key: a re-send says "possible
# duplicate" in its text.
DEDUP_PARAMS = {"pagerduty": "dedup", "opsgenie": "alias"}


def with_dedup_key(url: str, key: str) -> str:
    """``url`` with the service's idempotency parameter set to ``key`` (unless the URL sets it)."""
    scheme = url.split("://", 1)[0].lower()
    param = DEDUP_PARAMS.get(scheme)
    if param is None:
        return url
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(k == param for k, _ in query):
        return url
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode([*query, (param, key)])))


def apprise_type(message: Message):
    """The apprise notification type of a message: PagerDuty reads it as the event's severity
    (critical / warning / info: what decides a night-time phone call), Opsgenie as its action. A
    critical alert (or its escalation) is FAILURE, a warning WARNING, information and retraction
    notices INFO."""
    import apprise
    if message.payload.get("purpose") == "retraction":
        return apprise.NotifyType.INFO
    severity = (message.payload.get("alert") or {}).get("severity")
    return {"critical": apprise.NotifyType.FAILURE, "warning": apprise.NotifyType.WARNING}.get(
        severity, apprise.NotifyType.INFO)


class AppriseSender:
    type = "apprise"

    def __init__(self, urls: list[str], timeout: float):
        import apprise
        self._urls = list(urls)
        for url in self._urls:
            if not apprise.Apprise().add(url):
                raise ConfigError("an apprise URL was not understood")
        self.timeout = timeout
        self._partly = PartlyDone()  # indexes of the URLs that took a message

    def notifier(self, delivery_id: str, url: str):
        """An Apprise for one service and one message: keyed services get the delivery id as their dedup key."""
        import apprise
        a = apprise.Apprise()
        a.add(with_dedup_key(url, delivery_id))
        return a

    async def send(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        did = message.payload["delivery_id"]
        done = set(self._partly.get(did))
        self._partly.keep(did, done)  # filled in as services take it (also after a time-out)
        kind = apprise_type(message)

        def run() -> bool:
            ok = True
            for i, url in enumerate(self._urls):
                if i in done:
                    continue
                if self.notifier(did, url).notify(body=message.text, title=message.subject, notify_type=kind):
                    done.add(i)
                else:
                    ok = False
            return ok

        try:
            ok = await asyncio.wait_for(loop.run_in_executor(None, run), self.timeout)
        except asyncio.TimeoutError:
            raise DeliveryError("timeout", None, "apprise timed out", maybe_delivered=True) from None
        if not ok:
            raise DeliveryError("unavailable", None, "a notifier did not accept the message")
        self._partly.forget(did)


def build(routing: Routing, settings: Settings, session: Callable[[], aiohttp.ClientSession],
          clock: Callable[[], float] = time.time) -> dict[str, Sender]:
    return {name: _sender(r, settings, session, clock) for name, r in routing.receivers.items()}


def _sender(r: Receiver, settings: Settings, session, clock) -> Sender:
    o = r.options
    if r.type == "email":
        return EmailSender(list(o["to"]), settings)
    if r.type == "webhook":
        secret = _secret(r.name, o.get("secret_env"), o.get("secret_file"))
        return WebhookSender(o["url"], secret.encode(), o.get("timeout_seconds", settings.notify_send_timeout_seconds),
                             session, clock)
    urls = o.get("urls") or _secret(r.name, o.get("urls_env"), None).split()
    return AppriseSender(list(urls), settings.notify_send_timeout_seconds)


def _secret(receiver: str, env: str | None, file: str | None) -> str:
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"receiver {receiver!r}: environment variable {env} is not set")
        return value
    try:
        value = Path(file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"receiver {receiver!r}: cannot read secret_file {file}: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"receiver {receiver!r}: secret_file {file} is empty")
    return value
