"""What a receiver is told, and the signatures: one-click ack tokens and webhook bodies. Pure.

Messages carry patient identifiers (they go to clinicians); logs and metrics never do.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from neutrowatch.domain.ids import stable_id
from neutrowatch.notify.decisions import ESCALATION, RETRACTION, Job


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    payload: dict[str, Any]  # the webhook JSON body
    # A retraction notice: the delivery ids of this receiver's earlier messages about the withdrawn
    # alert that now carry only withdrawn alerts (a paging service closes their incidents: PagerDuty
    # resolve, Opsgenie close), and whether the notice itself goes to it too (some stay open).
    closes: tuple[str, ...] = ()
    notice_too: bool = True


class InvalidToken(ValueError):
    """Why an ack link is refused: malformed, bad_signature or expired."""


_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
POSSIBLE_DUPLICATE = ("Possible duplicate: an earlier attempt to send this message may have reached you "
                      "(same message id); NeutroWatch could not confirm it.")


def render_unit(items: Sequence[tuple[Mapping[str, Any], Job, str | None]], public_url: str, delivery: str,
                redelivery: bool = False, retraction: Mapping[str, Any] | None = None) -> Message:
    """One message about one or more alerts of a patient to one receiver; ``items`` are (alert, job,
    ack token). One alert: the single-alert message. Several (a group): every alert listed, most
    severe first, each with its own links, and the webhook body's ``alerts`` has them all.
    ``retraction``: for a retraction notice, the alert_retracted record (why it was withdrawn)."""
    ordered = sorted(items, key=lambda i: (_SEVERITY_ORDER.get(i[0]["severity"], 3), i[0]["observed_at"]))
    if len(ordered) == 1:
        alert, job, token = ordered[0]
        m = render(alert, job, public_url, token, delivery, retraction)
        entries = [_entry(alert, job, public_url, token)]
        subject, text = m.subject, m.text
    else:
        first, job, _ = ordered[0]
        entries = [_entry(a, j, public_url, t) for a, j, t in ordered]
        kinds = ", ".join(f"{a['severity'].upper() if a['severity'] == 'critical' else a['severity']} "
                          f"{a['kind'].replace('_', ' ')}" for a, _, _ in ordered)
        subject = f"[NeutroWatch] {len(ordered)} alerts for {first['patient_id']}: {kinds}"
        if len(subject) > 160:
            subject = subject[:157] + "..."
        lines = [f"{len(ordered)} alerts for patient {first['patient_id']} ({first['patient_key']}); "
                 "acknowledge each on its own.", ""]
        for n, (a, j, t) in enumerate(ordered, 1):
            block = _alert_lines(a, public_url, t)
            lines += [f"{n}. {a['severity'].upper()} {a['kind'].replace('_', ' ')}"] + ["   " + b for b in block] + [""]
        text = "\n".join(lines).rstrip("\n") + "\n"
    if redelivery:
        subject = "(possible duplicate) " + subject
        text = POSSIBLE_DUPLICATE + "\n\n" + text
    head = entries[0]
    payload = {"delivery_id": delivery, "purpose": job.purpose, "level": job.level, "receiver": job.receiver,
               "redelivery": redelivery, "count": len(entries),
               # the first (most severe) alert, as in a single-alert message; ``alerts`` has them all
               "alert_url": head["alert_url"], "ack_url": head["ack_url"], "alert": head["alert"],
               "alerts": entries}
    if retraction is not None and job.purpose == RETRACTION:
        payload["retraction"] = dict(retraction)
    return Message(subject, text, payload)


def _entry(alert: Mapping[str, Any], job: Job, public_url: str, token: str | None) -> dict[str, Any]:
    base = public_url.rstrip("/")
    return {"alert_id": alert["alert_id"], "alert_url": f"{base}/alerts/{alert['alert_id']}",
            "ack_url": f"{base}/ack?token={token}" if token and job.purpose != RETRACTION else None,
            "alert": alert}


def _alert_lines(alert: Mapping[str, Any], public_url: str, token: str | None) -> list[str]:
    base = public_url.rstrip("/")
    lines = [alert["summary"], f"Observed at: {alert['observed_at']}"]
    if alert.get("anc_cells_per_ul") is not None:
        lines.append(f"ANC: {alert['anc_cells_per_ul']:,.0f} cells/uL")
    lines.append(f"Alert: {base}/alerts/{alert['alert_id']}")
    if token:
        lines.append(f"Acknowledge (one click): {base}/ack?token={token}")
    return lines


def render(alert: Mapping[str, Any], job: Job, public_url: str, ack_token: str | None,
           delivery: str | None = None, retraction: Mapping[str, Any] | None = None) -> Message:
    base = public_url.rstrip("/")
    alert_url = f"{base}/alerts/{alert['alert_id']}"
    ack_url = f"{base}/ack?token={ack_token}" if ack_token else None
    sev = alert["severity"].upper()
    kind = alert["kind"].replace("_", " ")
    if job.purpose == RETRACTION:
        subject = f"[NeutroWatch] RETRACTED: {kind} for {alert['patient_id']}"
        # not "no action needed": the patient's other alerts and counts still stand (a deleted fever
        # withdraws the febrile alert, not the ANC of 300)
        lead = ("This alert no longer holds and is withdrawn. It says nothing about the patient's other "
                "alerts or latest counts, which still stand.")
        if retraction is not None:  # what changed: the engine's sentence with the cause
            lead += "\n" + str(retraction["summary"])
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
    payload = {"delivery_id": delivery or delivery_id(job), "purpose": job.purpose, "level": job.level, "receiver": job.receiver,
               "alert_url": alert_url, "ack_url": ack_url if job.purpose != RETRACTION else None,
               "alert": alert}  # the whole explained alert (evidence, counts, linked infusions)
    if retraction is not None and job.purpose == RETRACTION:
        payload["retraction"] = dict(retraction)
    return Message(subject, "\n".join(lines) + "\n", payload)


def delivery_id(job: Job) -> str:
    """Stable across retries and restarts: receivers drop a second delivery with the same id (after a
    crash between sending and recording, notify sends again rather than lose a notification)."""
    return stable_id("delivery.v1", job.key)


def unit_delivery_id(keys: Sequence[str]) -> str:
    """The id of a message about these jobs: a single job's is ``delivery_id``; a group's is over
    its sorted member keys (recorded when first sent, so a re-send keeps it)."""
    return stable_id("delivery.v1", *sorted(keys))


# ----------------------------------------------------------------------------- ack tokens

def sign_ack(secret: bytes, alert_id: str, receiver: str, expires_at: float) -> str:
    body = _b64(json.dumps({"a": alert_id, "r": receiver, "e": int(expires_at)}, separators=(",", ":")).encode())
    return f"{body}.{_mac(secret, body.encode())}"


def verify_ack(secret: bytes, token: str, now: float) -> tuple[str, str]:
    """(alert_id, receiver) of a valid, unexpired token; InvalidToken otherwise."""
    body, _, mac = token.partition(".")
    if not body or not mac:
        raise InvalidToken("malformed")
    if not hmac.compare_digest(mac.encode("utf-8", "surrogatepass"),  # any text a link may carry
                               _mac(secret, body.encode("utf-8", "surrogatepass")).encode()):
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
