"""What a receiver is told, and the signatures: one-click ack tokens and webhook bodies. Pure.

Messages carry patient identifiers (they go to clinicians); logs and metrics never do.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Mapping

from neutrowatch.domain.ids import stable_id
from neutrowatch.notify.decisions import ESCALATION, RETRACTION, Job


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    payload: dict[str, Any]  # the webhook JSON body


class InvalidToken(ValueError):
    """Why an ack link is refused: malformed, bad_signature or expired."""


def render(alert: Mapping[str, Any], job: Job, public_url: str, ack_token: str | None) -> Message:
    base = public_url.rstrip("/")
    alert_url = f"{base}/alerts/{alert['alert_id']}"
    ack_url = f"{base}/ack?token={ack_token}" if ack_token else None
    sev = alert["severity"].upper()
    kind = alert["kind"].replace("_", " ")
    if job.purpose == RETRACTION:
        subject = f"[NeutroWatch] RETRACTED: {kind} for {alert['patient_id']}"
        lead = "This alert no longer holds and is withdrawn; no action is needed for it."
    elif job.purpose == ESCALATION:
        subject = f"[NeutroWatch] ESCALATION {job.level}: {sev} {kind} for {alert['patient_id']} (not acknowledged)"
        lead = f"Not acknowledged yet: escalation level {job.level}."
    else:
        subject = f"[NeutroWatch] {sev} {kind} for {alert['patient_id']}"
        lead = ""
    lines = [lead] if lead else []
    lines += [alert["summary"], "",
              f"Patient: {alert['patient_id']} ({alert['patient_key']})",
              f"Severity: {alert['severity']}", f"Kind: {alert['kind']}",
              f"Observed at: {alert['observed_at']}", f"Alert: {alert_url}"]
    if alert.get("anc_cells_per_ul") is not None:
        lines.insert(len(lines) - 1, f"ANC: {alert['anc_cells_per_ul']:,.0f} cells/uL")
    if ack_url and job.purpose != RETRACTION:
        lines.append(f"Acknowledge (one click): {ack_url}")
    payload = {"delivery_id": delivery_id(job), "purpose": job.purpose, "level": job.level, "receiver": job.receiver,
               "alert_url": alert_url, "ack_url": ack_url if job.purpose != RETRACTION else None,
               "alert": alert}  # the whole explained alert (evidence, counts, linked infusions)
    return Message(subject, "\n".join(lines) + "\n", payload)


def delivery_id(job: Job) -> str:
    """Stable across retries and restarts: receivers drop a second delivery with the same id (after a
    crash between sending and recording, notify sends again rather than lose a notification)."""
    return stable_id("delivery.v1", job.key)


# ----------------------------------------------------------------------------- ack tokens

def sign_ack(secret: bytes, alert_id: str, receiver: str, expires_at: float) -> str:
    body = _b64(json.dumps({"a": alert_id, "r": receiver, "e": int(expires_at)}, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body.encode())}"


def verify_ack(secret: bytes, token: str, now: float) -> tuple[str, str]:
    """(alert_id, receiver) of a valid, unexpired token; InvalidToken otherwise."""
    body, _, mac = token.partition(".")
    if not body or not mac:
        raise InvalidToken("malformed")
    if not hmac.compare_digest(mac, _mac(secret, body.encode())):
        raise InvalidToken("bad_signature")
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        alert_id, receiver, expires = claims["a"], claims["r"], claims["e"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidToken("malformed") from exc
    if now >= expires:
        raise InvalidToken("expired")
    return alert_id, receiver


# ----------------------------------------------------------------------------- webhooks

def webhook_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`` (header X-NeutroWatch-Signature)."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def webhook_body(message: Message) -> bytes:
    return json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _mac(secret: bytes, data: bytes) -> str:
    return hmac.new(secret, data, hashlib.sha256).hexdigest()
