"""Receiver adapters: email (SMTP), signed webhook (aiohttp), apprise (chat, paging). Each sends
one Message or raises DeliveryError; classification into retry / give up is decisions.classify.
Secrets (SMTP password, webhook keys, apprise URLs) are resolved at start-up and never logged."""
from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import smtplib
import socket
import time
import urllib.parse
from collections import OrderedDict
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import aiohttp

from neutrowatch.notify.decisions import DeliveryError
from neutrowatch.notify.messages import Message, webhook_body, webhook_signature
from neutrowatch.notify.routing import Receiver, Routing
from neutrowatch.platform.settings import Settings

if TYPE_CHECKING:
    from neutrowatch.notify.store import Store

log = logging.getLogger(__name__)
logging.getLogger("apprise").setLevel(logging.ERROR)  # its messages can name notifier hosts


class ConfigError(RuntimeError):
    """A receiver cannot be set up (a secret is missing): `notify` refuses to start."""


class Sender(Protocol):
    type: str

    async def send(self, message: Message) -> None: ...


class PartlyDone:
    """Delivery id -> the recipients (or services) that took a message others refused, so that a
    retry goes only to the others. In memory (bounded) and in the notify store's Redis
    (``P:partly:{delivery id}``, a set that only grows, kept ``ttl`` seconds from its last change:
    the retry window), so a retry after a restart of notify still skips them. Members are
    recipient addresses or ids of apprise URLs (a hash: never the URL, which holds secrets), no
    patient identifiers. Without a store (or when Redis does not answer) memory alone."""

    def __init__(self, store: Callable[[], "Store | None"] = lambda: None, ttl: float = 3600.0, size: int = 10_000):
        self._done: OrderedDict[str, set] = OrderedDict()
        self._store, self.ttl, self._size = store, ttl, size

    async def get(self, delivery_id: str) -> set:
        done = set(self._done.get(delivery_id, ()))
        return done | await self._in_redis(lambda s: s.partly_done(delivery_id), "read", set())

    async def keep(self, delivery_id: str, done: set) -> None:
        """Remember ``done`` (in memory this very set: a send that goes on after a time-out adds to it)."""
        self._done[delivery_id] = done
        self._done.move_to_end(delivery_id)
        while len(self._done) > self._size:
            self._done.popitem(last=False)
        await self._in_redis(lambda s: s.keep_partly_done(delivery_id, set(done), self.ttl), "kept")

    async def forget(self, delivery_id: str) -> None:
        self._done.pop(delivery_id, None)
        await self._in_redis(lambda s: s.forget_partly_done(delivery_id), "forgotten")  # else it expires

    async def _in_redis(self, call, what: str, default=None):
        """``call(store)``; without a store, or when Redis does not answer, ``default`` (memory alone)."""
        store = self._store()
        if store is None:
            return default
        try:
            return await call(store)
        except Exception as exc:
            log.warning("notify: partly delivered message not %s in Redis: %s", what, type(exc).__name__)
            return default


class EmailSender:
    type = "email"

    def __init__(self, to: list[str], settings: Settings, partly: PartlyDone | None = None):
        self.to, self.s = to, settings
        self.partly = partly or PartlyDone()

    async def send(self, message: Message) -> None:
        did = message.payload["delivery_id"]
        done = await self.partly.get(did)
        todo = [a for a in self.to if a not in done]
        if not todo:  # every recipient took it on an earlier attempt
            await self.partly.forget(did)
            return
        refused = await asyncio.get_running_loop().run_in_executor(None, self._send, message, todo)
        if refused:  # accepted for the others: remember them, and fail for the refused ones
            await self.partly.keep(did, done | {a for a in todo if a not in refused})
            code = min(c for c, _ in refused.values())
            raise DeliveryError("smtp", code, f"{len(refused)} of {len(todo)} recipients refused")
        await self.partly.forget(did)

    def _send(self, message: Message, todo: list[str]) -> dict:
        """Send to ``todo``; the recipients the server refused (the others took it), or DeliveryError."""
        s = self.s
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
                return smtp.send_message(mail, to_addrs=todo) or {}
        except smtplib.SMTPRecipientsRefused as exc:
            code = min(c for c, _ in exc.recipients.values())
            raise DeliveryError("smtp", code, "recipients refused") from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError("smtp", exc.smtp_code, "server refused") from None
        except (socket.timeout, TimeoutError):
            raise DeliveryError("timeout", None, "SMTP timed out", maybe_delivered=True) from None
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            raise DeliveryError("connection", None, type(exc).__name__, maybe_delivered=sent_data) from None


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
# twice, and a retraction closes that incident (``close_incident``). Other apprise services (chat,
# ntfy, ...) have no such key: a re-send says "possible duplicate" in its text.
DEDUP_PARAMS = {"pagerduty": "dedup", "opsgenie": "alias"}


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


def _query(url: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)


def _with_param(url: str, param: str, value: str, replace: bool = False) -> str:
    query = _query(url)
    if any(k == param for k, _ in query):
        if not replace:
            return url
        query = [(k, v) for k, v in query if k != param]
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode([*query, (param, value)])))


def with_dedup_key(url: str, key: str) -> str:
    """``url`` with the service's idempotency parameter set to ``key`` (unless the URL sets it)."""
    param = DEDUP_PARAMS.get(_scheme(url))
    return url if param is None else _with_param(url, param, key)


def closes_incidents(url: str) -> bool:
    """A service whose incidents notify keys by delivery id: a retraction closes them. Not when the
    URL sets its own key (every message then updates one incident, which a retraction of one
    alert must not close)."""
    param = DEDUP_PARAMS.get(_scheme(url))
    return param is not None and all(k != param for k, _ in _query(url))


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


def close_incident(url: str, key: str, message: Message) -> bool:
    """Close the incident that the message with delivery id ``key`` opened on a keyed service.

    PagerDuty: an Events v2 ``resolve`` with that ``dedup_key`` (apprise ``?action=resolve``).
    Opsgenie: ``POST /v2/alerts/{alias}/close?identifierType=alias``. Apprise's own Opsgenie
    ``?action=close`` (2.2.0) closes only the alerts whose request ids the same Apprise object
    created, in memory (a new one per message here): it would send nothing and report success.
    So the close is made here, with the plugin's endpoint, credentials and request code."""
    import apprise
    scheme = _scheme(url)
    keyed = with_dedup_key(url, key)
    if scheme == "pagerduty":
        a = apprise.Apprise()
        a.add(_with_param(keyed, "action", "resolve", replace=True))
        return bool(a.notify(body=message.text, title=message.subject, notify_type=apprise.NotifyType.INFO))
    import requests
    from apprise.plugins import opsgenie
    plugin = apprise.Apprise.instantiate(keyed)
    if plugin is None or not plugin.alias:
        return False
    endpoint = f"{opsgenie.OPSGENIE_API_LOOKUP[plugin.region_name]}/{urllib.parse.quote(plugin.alias, safe='')}/close"
    body = {"source": plugin.app_desc, "note": message.text[:25_000]}
    if plugin.user:
        body["user"] = plugin.user
    ok, _ = plugin._fetch(requests.post, endpoint, body, {"identifierType": "alias"})
    return bool(ok)


def _url_id(url: str) -> str:
    """What PartlyDone keeps for a service: a hash of its URL (the URL holds secrets)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class AppriseSender:
    type = "apprise"

    def __init__(self, urls: list[str], timeout: float, partly: PartlyDone | None = None):
        import apprise
        self._urls = list(urls)
        for url in self._urls:
            if not apprise.Apprise().add(url):
                raise ConfigError("an apprise URL was not understood")
        self.timeout = timeout
        self.partly = partly or PartlyDone()  # the steps (below) that took a message

    def notifier(self, delivery_id: str, url: str):
        """An Apprise for one service and one message: keyed services get the delivery id as their dedup key."""
        import apprise
        a = apprise.Apprise()
        a.add(with_dedup_key(url, delivery_id))
        return a

    def steps(self, message: Message) -> list[tuple[str, Callable[[], bool]]]:
        """(id, call) of what sending the message is, per service: the message itself, or for a
        retraction on a keyed service, closing each incident it withdraws (and the notice too
        when some stay open)."""
        did, kind = message.payload["delivery_id"], apprise_type(message)
        out: list[tuple[str, Callable[[], bool]]] = []
        for url in self._urls:
            uid = _url_id(url)
            notice = True
            if message.closes and closes_incidents(url):
                out += [(f"{uid}:{key}", functools.partial(close_incident, url, key, message))
                        for key in message.closes]
                notice = message.notice_too
            if notice:
                out.append((uid, functools.partial(self._notify, did, url, message, kind)))
        return out

    def _notify(self, did: str, url: str, message: Message, kind) -> bool:
        return bool(self.notifier(did, url).notify(body=message.text, title=message.subject, notify_type=kind))

    async def send(self, message: Message) -> None:
        loop = asyncio.get_running_loop()
        did = message.payload["delivery_id"]
        done = await self.partly.get(did)
        steps = self.steps(message)

        def run() -> bool:
            ok = True
            for step, call in steps:
                if step in done:
                    continue
                if call():
                    done.add(step)  # seen by a later attempt of this process even after a time-out
                else:
                    ok = False
            return ok

        try:
            ok = await asyncio.wait_for(loop.run_in_executor(None, run), self.timeout)
        except asyncio.TimeoutError:
            await self.partly.keep(did, done)
            raise DeliveryError("timeout", None, "apprise timed out", maybe_delivered=True) from None
        if not ok:
            await self.partly.keep(did, done)
            raise DeliveryError("unavailable", None, "a notifier did not accept the message")
        await self.partly.forget(did)


def build(routing: Routing, settings: Settings, session: Callable[[], aiohttp.ClientSession],
          clock: Callable[[], float] = time.time,
          store: Callable[[], "Store | None"] = lambda: None) -> dict[str, Sender]:
    """The senders of the routing file; ``store``: the notify store once connected (None before),
    where the email and apprise senders keep what took a partly delivered message."""
    return {name: _sender(r, settings, session, clock, store) for name, r in routing.receivers.items()}


def partly_done_ttl(settings: Settings) -> float:
    """How long what took a partly delivered message is kept: the retry window (retries end after
    --notify-retry-give-up-seconds, the last one up to a back-off later), plus a send's lease."""
    return (settings.notify_retry_give_up_seconds + settings.notify_retry_max_seconds
            + 2 * settings.notify_send_timeout_seconds + 5)


def _sender(r: Receiver, settings: Settings, session, clock, store) -> Sender:
    o = r.options
    partly = PartlyDone(store, partly_done_ttl(settings))
    if r.type == "email":
        return EmailSender(list(o["to"]), settings, partly)
    if r.type == "webhook":
        secret = _secret(r.name, o.get("secret_env"), o.get("secret_file"))
        return WebhookSender(o["url"], secret.encode(), o.get("timeout_seconds", settings.notify_send_timeout_seconds),
                             session, clock)
    urls = o.get("urls") or _secret(r.name, o.get("urls_env"), None).split()
    return AppriseSender(list(urls), settings.notify_send_timeout_seconds, partly)


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
