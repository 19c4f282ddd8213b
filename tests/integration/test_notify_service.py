"""The notify service's decisions end to end on a real redis-server: alert records in, messages
out, through the real Store (its Lua scripts), with recording receivers and a clock the test moves
(escalation delays of 30 minutes without waiting for them). What is asserted is what a receiver
(a clinician's pager, mailbox or ward board) would get. The SMTP and webhook receivers themselves are
exercised in test_notify.py; the paging services (PagerDuty, Opsgenie through apprise) and notify
restarted on the same Redis here, with the service's own senders and real HTTP and SMTP servers."""
from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from notify_helpers import Mailbox, PagingServices
from neutrowatch import schemas
from neutrowatch.notify import decisions as d
from neutrowatch.notify import messages
from neutrowatch.notify.service import NotifyService
from neutrowatch.notify.store import Store
from neutrowatch.platform.health import Readiness
from neutrowatch.platform.settings import Settings

pytestmark = pytest.mark.integration
T0 = 1_700_000_000.0


# ----------------------------------------------------------------------------- the service, on a real Redis

class Recorder:
    """A receiver that records every message it takes; ``fail`` makes it raise instead."""

    def __init__(self, type_="webhook"):
        self.type, self.got, self.fail = type_, [], None

    async def send(self, message):
        if self.fail is not None:
            raise self.fail
        self.got.append(message)


class Harness:
    """A NotifyService on a Redis prefix of its own (or ``prefix``: a second harness on the same
    prefix is notify restarted). The receivers are Recorders unless ``real_senders``: then the
    service's own senders (SMTP, apprise) talk to the servers the routing file names."""

    def __init__(self, tmp_path: Path, redis_url: str, routing_yaml: str, prefix: str | None = None,
                 real_senders: bool = False, **settings):
        path = tmp_path / "routing.yaml"
        path.write_text(routing_yaml, encoding="utf-8")
        self.now = T0
        s = Settings(notify_routing_file=path, notify_public_url="https://nw.example", **settings)
        self.svc = NotifyService(s, web.Application(), Readiness(), clock=lambda: self.now)
        self.loop = asyncio.new_event_loop()  # one loop for the test: the Redis client's connections live in it
        self.redis = aioredis.Redis.from_url(redis_url)
        self.prefix = prefix or f"nwtest:{uuid.uuid4().hex[:8]}"
        self.svc.store = Store(self.redis, self.prefix, 2 * s.notify_send_timeout_seconds + 5)
        if not real_senders:
            self.rx = {name: Recorder(sender.type) for name, sender in self.svc.senders.items()}
            self.svc.senders = dict(self.rx)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def close(self):
        self.run(self.redis.aclose())
        self.loop.close()

    def feed(self, *records):
        async def go():
            return [await self.svc.intake(schemas.encode(r), self.now) for r in records]
        return self.run(go())

    def tick(self, to: float | None = None):
        """Advance the clock and send everything that is due (as the dispatcher loop does)."""
        if to is not None:
            self.now = to

        async def go():
            while True:
                jobs = await self.svc.store.claim_due(self.now)
                if not jobs:
                    return
                for unit, record in await self.svc._units(jobs, self.now):
                    await self.svc.deliver_unit(unit, record)
        self.run(go())

    def subjects(self, receiver):
        return [m.subject for m in self.rx[receiver].got]

    def audit(self, alert_id: str) -> list[dict]:
        """The alert's audit records still in the Redis outbox (nothing drains it here)."""
        raw = self.run(self.redis.lrange(f"{self.prefix}:outbox", 0, -1))
        return [r for r in map(json.loads, raw) if r["alert_id"] == alert_id]


@pytest.fixture
def harness(tmp_path, redis_url):
    made = []

    def make(routing_yaml: str, **settings) -> Harness:
        made.append(Harness(tmp_path, redis_url, routing_yaml, **settings))
        return made[-1]
    yield make
    for h in made:
        if not h.loop.is_closed():
            h.close()


def alert(n, kind="grade_change", severity="warning", patient="123", at="2023-11-14T22:00:00Z", anc=800.0, **kw):
    rec = {"schema": "neutrowatch.alert.v1", "alert_id": f"{n:032x}", "patient_id": patient,
           "patient_key": f"H|{patient}", "kind": kind, "severity": severity, "observed_at": at,
           "summary": f"{kind} {n}.", "evidence": {"rule": kind}, **kw}
    if anc is not None:
        rec["anc_cells_per_ul"] = anc
    return rec


def retraction(n, of, cause="corrected_result", patient="123", at="2023-11-14T22:00:00Z"):
    return {"schema": "neutrowatch.alert.v1", "alert_id": f"{n:032x}", "patient_id": patient,
            "patient_key": f"H|{patient}", "kind": "alert_retracted", "severity": "info", "observed_at": at,
            "summary": f"Retracted: the alert for the result of {at[:16]} no longer holds ({cause.replace('_', ' ')}).",
            "evidence": {"rule": "alert_retracted", "retracted_alert_id": of["alert_id"],
                         "retracted_kind": of["kind"], "cause": cause, "cause_event_id": "e1"},
            "retracts_alert_id": of["alert_id"]}


EXAMPLE = """\
receivers:
  oncall: {type: email, to: oncall@x.example}
  board: {type: email, to: board@x.example}
  pager: {type: email, to: pager@x.example}
  consultant: {type: email, to: consultant@x.example}
fallback_receiver: oncall
inhibit: {window: 24h}
route:
  receiver: oncall
  routes:
    - match: {severity: critical}
      receiver: board
      continue: true
      escalation: {receivers: [pager, consultant], delay: 30m}
    - match: {severity: critical}
      receiver: oncall
    - match: {severity: warning}
      receiver: oncall
      group_wait: 60s
"""


def test_harness_delivers_a_critical_at_once_and_a_redelivered_alert_sends_nothing_new(harness):
    h = harness(EXAMPLE)
    crit = alert(1, "agranulocytosis", "critical", anc=50.0)
    assert h.feed(crit, crit) == ["accepted", "redelivered"]
    h.tick()
    assert h.subjects("board") == ["[NeutroWatch] CRITICAL agranulocytosis for 123"]
    assert len(h.rx["oncall"].got) == 1
    h.feed(crit)
    h.tick(T0 + 10)
    assert len(h.rx["board"].got) == 1 and len(h.rx["oncall"].got) == 1
    h.tick(T0 + 1801)  # not acknowledged: the pager is told
    assert [m.subject for m in h.rx["pager"].got] == [
        "[NeutroWatch] ESCALATION 1: CRITICAL agranulocytosis for 123 (not acknowledged)"]


# ----------------------------------------------------------------------------- defects found by the audit

WARD_ESCALATES = """\
receivers:
  oncall: {type: email, to: oncall@x.example}
  pager: {type: email, to: pager@x.example}
route:
  receiver: oncall
  routes:
    - match: {patient_key: ["H|123"]}
      receiver: oncall
      escalation: {receivers: [pager], delay: 30m}
"""


def test_only_critical_alerts_escalate_a_recovery_never_pages_at_night(harness):
    """The issue: 'unacknowledged critical alerts escalate'. A route with an escalation chain
    (here a watched patient) also carries warnings and information: a recovery or a grade
    improvement left unacknowledged overnight must not page anyone."""
    h = harness(WARD_ESCALATES)
    h.feed(alert(1, "recovery", "info", anc=1800.0), alert(2, "chronic_neutropenia", "warning", anc=900.0),
           alert(3, "severe_neutropenia", "critical", anc=400.0, at="2023-11-20T22:00:00Z"))
    h.tick()
    assert len(h.rx["oncall"].got) == 3
    h.tick(T0 + 3 * 3600)
    assert h.subjects("pager") == [
        "[NeutroWatch] ESCALATION 1: CRITICAL severe neutropenia for 123 (not acknowledged)"]


def test_a_retracted_critical_no_longer_hides_the_patients_warnings(harness):
    """ANC 50 (agranulocytosis) corrected to 800: the engine withdraws the critical and raises a
    grade change to moderate. The clinician told 'retracted' must still hear about the 800."""
    h = harness(EXAMPLE)
    crit = alert(1, "agranulocytosis", "critical", anc=50.0)
    h.feed(crit)
    h.tick()
    h.feed(retraction(2, crit), alert(3, "grade_change", "warning", anc=800.0))
    h.tick(T0 + 61)
    subjects = h.subjects("oncall")
    assert "[NeutroWatch] RETRACTED: agranulocytosis for 123" in subjects
    assert "[NeutroWatch] WARNING grade change for 123" in subjects


def test_a_critical_escalates_on_time_while_its_first_receiver_is_down(harness):
    """The ward board (the route that carries the escalation chain) refuses connections for
    hours. The critical is not acknowledged: the pager must be told after the 30 min delay, not
    never (the board's retries end after an hour in the fallback, which already had the alert)."""
    h = harness(EXAMPLE)
    h.rx["board"].fail = d.DeliveryError("connection", None, "refused")
    h.feed(alert(1, "agranulocytosis", "critical", anc=50.0))
    t = T0
    while t < T0 + 1900:
        h.tick(t)
        t += 60
    assert len(h.rx["oncall"].got) == 1 and h.rx["board"].got == []
    assert h.subjects("pager") == [
        "[NeutroWatch] ESCALATION 1: CRITICAL agranulocytosis for 123 (not acknowledged)"]
    h.rx["board"].fail = None  # the board comes back: it gets the alert once, the chain goes on
    h.tick(T0 + 2300)
    assert len(h.rx["board"].got) == 1 and len(h.rx["pager"].got) == 1
    h.tick(T0 + 1900 + 1801)
    assert len(h.rx["consultant"].got) == 1


def test_an_acknowledged_critical_does_not_escalate_while_its_first_receiver_is_down(harness):
    h = harness(EXAMPLE)
    h.rx["board"].fail = d.DeliveryError("connection", None, "refused")
    crit = alert(1, "agranulocytosis", "critical", anc=50.0)
    h.feed(crit)
    h.tick()
    h.run(h.svc.acknowledge(crit["alert_id"], "dr who", None, "api"))
    for t in range(int(T0), int(T0 + 4000), 120):
        h.tick(float(t))
    assert h.rx["pager"].got == [] and h.rx["consultant"].got == []


def test_a_retraction_notice_says_why_the_alert_was_withdrawn(harness):
    """The notice told the ward board and on-call only that the febrile neutropenia 'no longer
    holds', not what changed (here: the fever reading was deleted, the count still stands)."""
    h = harness(EXAMPLE)
    crit = alert(1, "febrile_neutropenia", "critical", anc=300.0)
    h.feed(crit)
    h.tick()
    h.feed(retraction(2, crit, cause="deleted_result"))
    h.tick(T0 + 5)
    for receiver in ("board", "oncall"):
        notice = h.rx[receiver].got[-1]
        assert notice.subject == "[NeutroWatch] RETRACTED: febrile neutropenia for 123"
        assert "no longer holds (deleted result)" in notice.text
        # and not read as "the patient is fine": the ANC of 300 still stands
        assert "no action" not in notice.text and "latest counts, which still stand" in notice.text
        assert notice.payload["retraction"]["evidence"]["cause"] == "deleted_result"
        assert notice.payload["alert"]["alert_id"] == crit["alert_id"]  # what is withdrawn


# ----------------------------------------------------------------------------- paging services, restarts

@pytest.fixture
def paging(monkeypatch):
    """PagerDuty and Opsgenie stand-ins on a real HTTP server. Apprise's plugins post to fixed hosts
    (``region`` picks one; no custom host), so their US endpoint constants point at the stand-in."""
    from apprise.plugins import opsgenie, pagerduty
    services = PagingServices().start()
    monkeypatch.setitem(pagerduty.PAGERDUTY_API_LOOKUP, pagerduty.PagerDutyRegion.US, services.pagerduty_url)
    monkeypatch.setitem(opsgenie.OPSGENIE_API_LOOKUP, opsgenie.OpsgenieRegion.US, services.opsgenie_url)
    yield services
    services.stop()


PAGING = """\
receivers:
  pager: {type: apprise, urls: ["pagerduty://ik-ward@pd-api-key", "opsgenie://og-api-key"]}
route:
  receiver: pager
  escalation: {receivers: [pager], delay: 30m}
  routes:
    - match: {severity: warning}
      receiver: pager
      group_wait: 60s
"""


def test_a_retraction_resolves_the_pagerduty_incidents_and_closes_the_opsgenie_alerts_of_the_alert(harness, paging):
    """A critical pages PagerDuty and Opsgenie, and 30 min later, unacknowledged, pages them again
    (an escalation: a second incident). Then it is withdrawn. Before, the retraction went out as a
    new info-level PagerDuty event (both incidents stayed open, a third was opened) and Opsgenie got
    nothing. Now each incident is resolved / closed by the key its own message was sent with."""
    h = harness(PAGING, real_senders=True)
    crit = alert(1, "agranulocytosis", "critical", anc=50.0)
    h.feed(crit)
    h.tick()
    h.tick(T0 + 1801)
    sent = sorted((r for r in h.audit(crit["alert_id"]) if r["outcome"] == "sent"), key=lambda r: r["level"])
    keys = [r["delivery_id"] for r in sent]
    assert [(r["purpose"], r["level"]) for r in sent] == [("alert", 0), ("escalation", 1)]
    assert keys[0] == messages.delivery_id(d.Job(crit["alert_id"], "pager", d.ALERT, 0))
    assert [(e["event_action"], e["dedup_key"], e["payload"]["severity"]) for e in paging.pagerduty("ik-ward")] == [
        ("trigger", k, "critical") for k in keys]
    assert [(r["path"], r["body"]["alias"]) for r in paging.opsgenie()] == [("/v2/alerts", k) for k in keys]

    h.feed(retraction(2, crit))
    h.tick(T0 + 1802)
    assert paging.pagerduty("ik-ward")[2:] == [
        {"routing_key": "ik-ward", "event_action": "resolve", "dedup_key": k} for k in keys]
    closes = paging.opsgenie()[2:]
    assert [(r["method"], r["path"], r["query"]) for r in closes] == [
        ("POST", f"/v2/alerts/{k}/close", {"identifierType": "alias"}) for k in keys]
    assert all(r["auth"] == "GenieKey og-api-key" and "withdrawn" in r["body"]["note"] for r in closes)
    assert [(r["purpose"], r["outcome"]) for r in h.audit(crit["alert_id"])][-1] == ("retraction", "sent")
    h.tick(T0 + 4000)  # nothing more: no escalation of a withdrawn alert, no second resolve
    assert len(paging.pagerduty()) == 4 and len(paging.opsgenie()) == 4


def test_a_grouped_page_is_resolved_only_once_every_alert_in_it_is_withdrawn(harness, paging):
    """Two warnings of a patient went to PagerDuty as one message (one incident). Withdrawing one
    must not resolve the incident of the other, which still stands; withdrawing both does."""
    h = harness(PAGING, real_senders=True)
    w1, w2 = alert(1, "chronic_neutropenia", "warning"), alert(2, "cyclic_neutropenia_suspected", "warning")
    h.feed(w1, w2)
    h.tick(T0 + 61)
    group = messages.unit_delivery_id([d.Job(w["alert_id"], "pager").key for w in (w1, w2)])
    assert [(e["event_action"], e["dedup_key"]) for e in paging.pagerduty()] == [("trigger", group)]

    h.feed(retraction(3, w1))
    h.tick(T0 + 62)
    [notice] = paging.pagerduty()[1:]  # told as a notice of its own; the group's incident stays open
    assert (notice["event_action"], notice["payload"]["severity"]) == ("trigger", "info")
    assert notice["dedup_key"] != group and "RETRACTED" in notice["payload"]["summary"]
    assert not [r for r in paging.opsgenie() if r["path"].endswith("/close")]

    h.feed(retraction(4, w2))
    h.tick(T0 + 63)
    assert paging.pagerduty()[2:] == [{"routing_key": "ik-ward", "event_action": "resolve", "dedup_key": group}]
    assert [r["path"] for r in paging.opsgenie() if r["path"].endswith("/close")] == [f"/v2/alerts/{group}/close"]


TWO_RECIPIENTS = """\
receivers:
  mail: {type: email, to: [oncall@x.example, consultant@x.example]}
route:
  receiver: mail
"""


def test_after_a_restart_an_email_one_recipient_refused_is_retried_for_that_recipient_only(harness):
    """The consultant's mailbox answers 452 (try later); the on-call took the email. Notify is
    restarted before the retry: the retry still goes to the consultant alone (before, the memory of
    who took it was lost with the process and the on-call got the critical twice)."""
    mailbox = Mailbox().start()
    try:
        mailbox.refuse = {"consultant@x.example": "452 4.2.2 mailbox busy"}
        first = harness(TWO_RECIPIENTS, real_senders=True, notify_smtp_port=mailbox.port)
        crit = alert(1, "agranulocytosis", "critical", patient="MRN-4711", anc=50.0)
        first.feed(crit)
        first.tick()
        assert [(r["outcome"], r["reason"]) for r in first.audit(crit["alert_id"])][1:] == [("retrying", "smtp_452")]
        kept = {k: (first.run(first.redis.smembers(k)), first.run(first.redis.ttl(k)))
                for k in first.run(first.redis.keys(f"{first.prefix}:partly:*"))}
        first.close()  # notify stops; another starts on the same Redis
        mailbox.refuse = {}

        again = harness(TWO_RECIPIENTS, prefix=first.prefix, real_senders=True, notify_smtp_port=mailbox.port)
        again.tick(T0 + 60)
        assert [m["X-Envelope-To"] for m in mailbox.about(crit["alert_id"], raw=True)] == [
            "oncall@x.example", "consultant@x.example"]
        assert [(r["outcome"], r["reason"]) for r in again.audit(crit["alert_id"])][-1] == ("sent", "delivered")
        # what was kept: who took it, under the delivery id (no patient identifier), for the retry window
        [(key, (members, ttl))] = kept.items()
        assert "MRN-4711" not in key.decode() and members == {b"oncall@x.example"}
        window = again.svc.s.notify_retry_give_up_seconds + again.svc.s.notify_retry_max_seconds
        assert window <= ttl <= window + 60
        assert again.run(again.redis.exists(key)) == 0  # delivered to all: forgotten
    finally:
        mailbox.stop()


TWO_PAGERS = """\
receivers:
  pager: {type: apprise, urls: ["pagerduty://ik-ward@pd-api-key", "pagerduty://ik-backup@pd-api-key"]}
route:
  receiver: pager
"""


def test_after_a_restart_a_page_one_service_refused_is_retried_on_that_service_only(harness, paging):
    """One apprise receiver, two PagerDuty services; the backup answers 503, the ward's took the
    critical. After a restart the retry goes to the backup alone: the ward is not paged twice."""
    paging.failing = {"ik-backup"}
    first = harness(TWO_PAGERS, real_senders=True)
    crit = alert(1, "agranulocytosis", "critical", anc=50.0)
    first.feed(crit)
    first.tick()
    [page] = paging.pagerduty("ik-ward")
    assert paging.pagerduty("ik-backup") == [] and [r["status"] for r in paging.requests] == [202, 503]
    kept = b"".join(m for k in first.run(first.redis.keys(f"{first.prefix}:partly:*"))
                    for m in first.run(first.redis.smembers(k)))
    first.close()
    paging.failing.clear()

    again = harness(TWO_PAGERS, prefix=first.prefix, real_senders=True)
    again.tick(T0 + 60)
    assert [e["dedup_key"] for e in paging.pagerduty("ik-backup")] == [page["dedup_key"]]
    assert paging.pagerduty("ik-ward") == [page]
    assert [(r["outcome"], r["reason"]) for r in again.audit(crit["alert_id"])][-1] == ("sent", "delivered")
    assert kept and b"pd-api-key" not in kept and b"ik-" not in kept  # the URLs hold secrets: only a hash of each
