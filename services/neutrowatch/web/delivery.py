"""An alert's delivery state as the alerts page shows it, from notify's store (pure)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from neutrowatch.notify.decisions import ALERT, ESCALATION

# Most decisive first: a retracted alert needs nothing, an acknowledged one is being handled.
STATES = ("retracted", "acknowledged", "escalated", "sent", "scheduled", "not_sent", "waiting", "not_tracked")
OPEN = frozenset(STATES) - {"retracted", "acknowledged"}


@dataclass(frozen=True)
class Delivery:
    state: str
    detail: str  # followed by the time ``at`` (ISO 8601) when there is one
    at: str | None = None
    ack: dict[str, str] | None = None
    can_ack: bool = False  # notify knows the alert: POST /alerts/{id}/ack will find it

    @property
    def open(self) -> bool:
        return self.state in OPEN


def delivery(view: dict[str, Any], retracted: bool, notify_here: bool = True) -> Delivery:
    """``view``: one entry of notify.store.delivery_view; ``retracted``: the monitor withdrew the
    alert (an alert_retracted record names it); ``notify_here``: notify runs in this process (else
    it may run as its own service, or not at all)."""
    ack = view.get("acknowledged")
    if retracted or view.get("retracted"):
        return Delivery("retracted", "withdrawn by the monitor", ack=ack)
    if ack:
        return Delivery("acknowledged", f"by {ack.get('by', '?')} at", iso(ack.get("at")), ack=ack)
    sent = view.get("sent") or []
    escalations = [s for s in sent if s["purpose"] == ESCALATION]
    first = [s for s in sent if s["purpose"] == ALERT]
    known = bool(view.get("known"))
    told = ", ".join(sorted({s["receiver"] for s in first}))
    if escalations:
        top = max(escalations, key=lambda s: s["level"])
        return Delivery("escalated", (f"sent to {told}; " if told else "") +
                        f"level {top['level']} to {top['receiver']} at", iso(top["at"]), can_ack=known)
    if first:
        return Delivery("sent", f"to {told} at", iso(min(s["at"] for s in first)), can_ack=known)
    if view.get("pending"):
        return Delivery("scheduled", "notification planned (group wait or retrying)", can_ack=known)
    if known:
        return Delivery("not_sent", "routed but not delivered: suppressed, silenced or failed (see the audit topic)",
                        can_ack=True)
    if notify_here:
        return Delivery("waiting", "notify has not consumed this alert yet")
    return Delivery("not_tracked", "no delivery record (notify has not seen it, or does not run)")


def _datetime(value: Any) -> datetime | None:
    """Epoch seconds or ISO 8601 -> aware datetime (None when neither)."""
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except (TypeError, ValueError):
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def iso(value: Any) -> str | None:
    dt = _datetime(value)
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if dt else None


def when(value: Any) -> str:
    """'2026-03-01 08:00 UTC' (the page's script shows it in the browser's time zone)."""
    dt = _datetime(value)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if dt else str(value)
