"""The notify service's decisions end to end on a real redis-server: alert records in, messages
out, through the real Store (its Lua scripts), with recording receivers and a clock the test moves
(escalation delays of 30 minutes without waiting for them). What is asserted is what a receiver
(a clinician's pager, mailbox or ward board) would get. The SMTP and webhook receivers themselves are
exercised in test_notify.py."""
from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from neutrowatch import schemas
from neutrowatch.notify import decisions as d
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
    def __init__(self, tmp_path: Path, redis_url: str, routing_yaml: str, **settings):
        path = tmp_path / "routing.yaml"
        path.write_text(routing_yaml, encoding="utf-8")
        self.now = T0
        s = Settings(notify_routing_file=path, notify_public_url="https://nw.example", **settings)
        self.svc = NotifyService(s, web.Application(), Readiness(), clock=lambda: self.now)
        self.loop = asyncio.new_event_loop()  # one loop for the test: the Redis client's connections live in it
        self.redis = aioredis.Redis.from_url(redis_url)
        self.svc.store = Store(self.redis, f"nwtest:{uuid.uuid4().hex[:8]}", 2 * s.notify_send_timeout_seconds + 5)
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


@pytest.fixture
def harness(tmp_path, redis_url):
    made = []

    def make(routing_yaml: str, **settings) -> Harness:
        made.append(Harness(tmp_path, redis_url, routing_yaml, **settings))
        return made[-1]
    yield make
    for h in made:
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
