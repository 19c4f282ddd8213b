"""`neutrowatch notify`, wired once: consume alerts (group neutrowatch-notify) -> plan -> Redis
(durable) -> commit offset; a dispatcher claims due jobs -> decide -> send -> record; an outbox
drain puts every decision on neutrowatch.notifications.v1. The clock is injected."""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import sys
import time
from dataclasses import replace
from typing import Callable, TextIO

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from neutrowatch import schemas, topics
from neutrowatch.notify import audit, decisions, grouping, messages, receivers, routing
from neutrowatch.notify.decisions import ALERT, ESCALATION, RETRACTION, Job
from neutrowatch.notify.store import Store
from neutrowatch.platform import metrics
from neutrowatch.platform.health import Readiness
from neutrowatch.platform.settings import Settings

log = logging.getLogger(__name__)


class NotifyService:
    def __init__(self, settings: Settings, app: web.Application, readiness: Readiness,
                 clock: Callable[[], float] = time.time):
        if settings.notify_routing_file is None:
            raise routing.RoutingError("notify", 0, "no routing file: set --notify-routing-file")
        self.s, self.clock = settings, clock
        self.routing = routing.load(settings.notify_routing_file)  # RoutingError names line and problem
        self._session: aiohttp.ClientSession | None = None
        self.store: Store | None = None
        # ConfigError; a sender's memory of a partly delivered message lives in the store's Redis
        self.senders = receivers.build(self.routing, settings, lambda: self._session, clock, lambda: self.store)
        secret = settings.notify_ack_secret
        self.ack_secret = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        if secret is None:
            log.warning("no NEUTROWATCH_NOTIFY_ACK_SECRET: ack links are signed with a per-process key")
        self.redis = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.assigned = False
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._oldest_open_critical: float | None = None  # refreshed from Redis by _gauges
        metrics.NOTIFY_OLDEST_UNACKED_CRITICAL_AGE.set_function(self._oldest_open_critical_age)
        from neutrowatch.notify.api import NotifyApi
        app.add_routes(NotifyApi(self).routes())
        readiness.add("notify_kafka", self._kafka_ready)
        readiness.add("notify_redis", self._redis_ready)
        readiness.add("notify_assigned", self._assigned)

    # --- lifecycle
    async def start(self) -> None:
        from neutrowatch.platform.redis import connect_redis
        self.redis = connect_redis(self.s)
        lease = 2 * self.s.notify_send_timeout_seconds + 5
        self.store = Store(self.redis, self.s.notify_redis_prefix, lease)
        self._session = aiohttp.ClientSession()
        self.producer = AIOKafkaProducer(**self.s.aiokafka_client_config(), acks="all",
                                         client_id="neutrowatch-notify")
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            topics.ALERTS, **self.s.aiokafka_client_config(), group_id=self.s.notify_group, client_id="neutrowatch-notify",
            enable_auto_commit=False, auto_offset_reset=self.s.notify_offset_reset,
            session_timeout_ms=int(self.s.monitor_session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(self.s.monitor_heartbeat_seconds * 1000),
            rebalance_timeout_ms=int(self.s.monitor_rebalance_timeout_seconds * 1000))
        await self.consumer.start()
        for loop in (self._consume, self._dispatch, self._drain, self._gauges):
            self._tasks.append(asyncio.create_task(self._forever(loop), name=f"notify-{loop.__name__}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        closers = [c for c in (self.consumer and self.consumer.stop, self.producer and self.producer.stop,
                               self._session and self._session.close, self.redis and self.redis.aclose) if c]
        # side by side: a broker slow to take the group leave does not add its wait to the others'
        results = await asyncio.gather(*(asyncio.wait_for(c(), 5) for c in closers), return_exceptions=True)
        for closer, result in zip(closers, results):
            if isinstance(result, Exception):  # stopping: nothing left to do about it
                log.warning("notify: %s while stopping (%s)", type(result).__name__, closer.__qualname__)

    async def _forever(self, step) -> None:
        """Run a loop step again after any failure (Redis or Kafka away), with back-off."""
        delay = 0.2
        while True:
            try:
                await step()
                delay = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a dependency failed: log without payloads, back off, retry
                log.warning("notify %s: %s; retrying in %.1fs", step.__name__, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # --- intake
    async def _consume(self) -> None:
        assert self.consumer is not None
        while True:
            batch = await self.consumer.getmany(timeout_ms=500, max_records=200)
            if not self.assigned and self.consumer.assignment():
                for tp in self.consumer.assignment():  # resolve positions before saying ready
                    await self.consumer.position(tp)
                self.assigned = True
            for records in batch.values():
                for msg in records:
                    await self.intake(msg.value, msg.timestamp / 1000 if msg.timestamp else None)
            if batch:
                await self.consumer.commit()  # every decision of the batch is durable in Redis
                self._wake.set()

    async def intake(self, raw: bytes, produced_at: float | None) -> str:
        assert self.store is not None
        try:
            alert = schemas.decode(raw, "alert.v1")
        except schemas.SchemaError as exc:
            log.warning("notify: alert record rejected: %s %s", exc.field, exc.message[:120])
            metrics.NOTIFY_ALERTS_CONSUMED.labels("rejected").inc()
            return "rejected"
        now = self.clock()
        if alert["kind"] == "alert_retracted":
            old = alert["retracts_alert_id"]
            # 1. the retracted flag, atomically with the record: from here on no delivery of the old
            #    alert can start (store.begin refuses it); 2. whom to tell and what to cancel, from one
            #    snapshot. A crash between 1 and 2: the record comes again (offset not committed) and
            #    2 runs then (P:rplanned says whether it ran).
            new = await self.store.accept(alert, produced_at, [], [], retracts=old)
            jobs = []
            if new or not await self.store.retraction_planned(old):
                jobs = await self._plan_retraction(old, now)
            outcome = "retraction" if new else "redelivered"
        else:
            jobs = decisions.plan(alert, self.routing, now)
            audits = [audit.record(j, alert, "scheduled", "routed", now, self._type(j.receiver)) for j in jobs]
            outcome = "accepted" if await self.store.accept(alert, produced_at, jobs, audits) else "redelivered"
        metrics.NOTIFY_ALERTS_CONSUMED.labels(outcome).inc()
        log.info("notify: alert %s %s (%d jobs)", alert["alert_id"][:8], outcome, len(jobs))
        return outcome

    async def _plan_retraction(self, old: str, now: float) -> list[Job]:
        """Retraction notices to every receiver that was or may have been told (delivered, or a
        delivery in flight or with an unclear end); pending notices and escalations cancelled,
        except a delivery being sent right now (it ends by itself; its notice waits for it)."""
        assert self.store is not None
        sent, flying, pending = await self.store.retraction_view(old)
        old_alert, _ = await self.store.alert(old)
        notices = decisions.plan_retraction(old, decisions.told_receivers(sent, flying.items()), now)
        cancel = [j for j in pending if not (j.key in flying and flying[j.key].state == decisions.SENDING)]
        audits = [audit.record(j, old_alert, "scheduled", "retraction_notice", now, self._type(j.receiver))
                  for j in notices]
        audits += [audit.record(j, old_alert, "cancelled", "retracted", now, self._type(j.receiver)) for j in cancel]
        await self.store.plan_retraction(old, notices, cancel, audits)
        return notices

    # --- delivery
    async def _dispatch(self) -> None:
        assert self.store is not None
        while True:
            now = self.clock()
            jobs = await self.store.claim_due(now)
            if jobs:
                units = await self._units(jobs, now)
                await asyncio.gather(*(self.deliver_unit(unit, record) for unit, record in units))
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.s.notify_tick_seconds)
            except asyncio.TimeoutError:
                pass

    async def _units(self, jobs: list[Job], now: float) -> list[tuple[list[Job], decisions.InFlight | None]]:
        """The messages to send for claimed jobs: a job with an in-flight record is re-sent exactly
        as first sent (same members, same delivery id); the rest are grouped (grouping.py) with the
        notices of their patient waiting in a group, which this claim takes along."""
        store = self.store
        assert store is not None
        records = await store.in_flight(jobs)
        resends: dict[str, tuple[list[Job], decisions.InFlight]] = {}
        fresh: list[Job] = []
        for j in jobs:
            r = records.get(j.key)
            if r is None:
                fresh.append(j)
            else:
                resends.setdefault(r.delivery_id, ([], r))[0].append(j)
        out: list[tuple[list[Job], decisions.InFlight | None]] = []
        for members, r in resends.values():
            have = {j.key for j in members}
            members += await store.claim_jobs([k for k in r.keys if k not in have], now)
            out.append((members, r))
        waiting: list[Job] = []
        for group in sorted({j.group for j in fresh if grouping.leads_a_group(j)}):
            taken = await store.claim_group(group, now)
            flying = await store.in_flight(taken)  # an earlier message's member: re-sent on its own
            await store.release([j for j in taken if j.key in flying])
            waiting += [j for j in taken if j.key not in flying]
        messages_, unused = grouping.units(fresh, waiting)
        await store.release(unused)
        return out + [(m, None) for m in messages_]

    async def deliver_unit(self, jobs: list[Job], record: decisions.InFlight | None) -> str:
        """One message to one receiver about one or more alerts. ``record``: the in-flight record of
        an earlier attempt (re-send with its delivery id, marked as a possible duplicate when that
        attempt may have reached the receiver)."""
        store, now = self.store, self.clock()
        assert store is not None and jobs
        receiver, rtype = jobs[0].receiver, self._type(jobs[0].receiver)
        stale_after = store.lease
        go: list[tuple[Job, dict, float | None]] = []
        finished: list[tuple] = []
        later: list[Job] = []
        for job in jobs:
            alert, produced_at = await store.alert(job.alert_id)
            if alert is None:  # expired from the store: nothing to say
                finished.append((job, [], [], None, False, True))
                continue
            decision = decisions.decide(job, alert, await store.state(alert, now), self.routing, now, stale_after)
            if decision.reason == "waiting_for_in_flight":  # a retraction notice waits for the alert's own
                later.append(job)
                continue
            if not decision.go:
                finished.append(self._not_sent(job, alert, decision, now, rtype))
                continue
            go.append((job, alert, produced_at))
        await store.release(later, due=now + 0.5)
        while go:
            keys = [j.key for j, _, _ in go]
            if record is None:
                flight = decisions.InFlight(messages.unit_delivery_id(keys), tuple(sorted(keys)), decisions.SENDING, now)
            else:
                flight = replace(record, state=decisions.SENDING, at=now)
            refused = await store.begin([j for j, _, _ in go], flight, fresh=record is None)
            if not refused:
                break
            # retracted (or cancelled, e.g. an escalation by an acknowledgement) since the decision
            for j, alert, _ in go:
                if refused.get(j.key) == "retracted":
                    finished.append(self._not_sent(j, alert, decisions.Decision(False, "retracted"), now, rtype))
            go = [g for g in go if g[0].key not in refused]
            if record is not None:
                break
        if finished:
            await store.complete_many(finished)
        if not go:
            return "nothing_to_send"
        redelivery = record is not None and record.maybe_sent
        items = [(alert, j, messages.sign_ack(self.ack_secret, j.alert_id, j.receiver,
                                              now + self.s.notify_ack_link_ttl_seconds) if j.purpose != "retraction" else None)
                 for j, alert, _ in go]
        retraction = await store.retraction_of(go[0][0].alert_id) if go[0][0].purpose == "retraction" else None
        message = messages.render_unit(items, self.s.notify_public_url, flight.delivery_id, redelivery, retraction)
        if go[0][0].purpose == RETRACTION:  # sent alone: closes the incidents its alert opened
            closes, notice_too = await self._withdrawn(go[0][0], go[0][1], now)
            message = replace(message, closes=closes, notice_too=notice_too)
        try:
            await asyncio.wait_for(self.senders[receiver].send(message), self.s.notify_send_timeout_seconds + 1)
        except (decisions.DeliveryError, asyncio.TimeoutError) as exc:
            err = exc if isinstance(exc, decisions.DeliveryError) else decisions.DeliveryError("timeout")
            return await self._failed_unit(go, flight, err, rtype, record is not None and record.maybe_sent)
        done = self.clock()
        await store.complete_many(
            [(j, [audit.record(j, alert, "sent", "redelivered_possible_duplicate" if redelivery else "delivered",
                               done, rtype, delivery_id=flight.delivery_id)],
              [e for e in [decisions.next_escalation(j, done)] if e], done,
              alert["severity"] == "critical" and j.purpose == ALERT, True) for j, alert, _ in go])
        for j, alert, produced_at in go:
            metrics.NOTIFY_SENT.labels(rtype, j.purpose).inc()
            if j.purpose == ALERT and produced_at:
                metrics.NOTIFY_DELIVERY_SECONDS.labels(rtype).observe(max(0.0, done - produced_at))
        log.info("notify: %s %s -> %s (%s) delivered%s, attempt %d%s%s", go[0][0].purpose,
                 ",".join(j.alert_id[:8] for j, _, _ in go), receiver, rtype,
                 f" as one message about {len(go)} alerts" if len(go) > 1 else "", go[0][0].attempt,
                 " (re-send, possible duplicate)" if redelivery else "",
                 f", closing {len(message.closes)} earlier message(s)" if message.closes else "")
        return "delivered"

    async def _withdrawn(self, job: Job, alert: dict, now: float) -> tuple[tuple[str, ...], bool]:
        """What a retraction notice closes (decisions.withdrawn): the receiver's messages about the
        withdrawn alert, by the delivery id each went out with, when all their alerts are withdrawn."""
        store = self.store
        assert store is not None
        state = await store.state(alert, now)
        sent_in = await store.messages_of(job.alert_id)
        members = {decisions.alert_of(k) for m in sent_in.values() for k in m.keys}
        return decisions.withdrawn(job.receiver, state, sent_in, await store.retracted(members))

    def _not_sent(self, job: Job, alert: dict, decision: decisions.Decision, now: float, rtype: str) -> tuple:
        outcome = "suppressed" if decision.reason in ("duplicate", "silenced", "inhibited_by_critical") else "cancelled"
        metrics.NOTIFY_SUPPRESSED.labels(decision.reason).inc()
        log.info("notify: %s %s -> %s: %s", job.purpose, job.alert_id[:8], job.receiver, decision.reason)
        rec = audit.record(job, alert, outcome, decision.reason, now, rtype,
                           silence_id=decision.detail if decision.reason == "silenced" else None)
        # an in-flight record that may have reached the receiver stays: a retraction still tells it
        return (job, [rec], [], None, False, False)

    async def _failed_unit(self, go: list[tuple[Job, dict, float | None]], flight: decisions.InFlight,
                           err: decisions.DeliveryError, rtype: str, earlier_maybe_sent: bool) -> str:
        assert self.store is not None
        now, verdict = self.clock(), decisions.classify(err)
        state = decisions.in_flight_state(err, earlier_maybe_sent)
        await self.store.mark([j for j, _, _ in go], replace(flight, state=state, at=now))
        lead = go[0][0]
        again = decisions.retry(lead, now, self.s.notify_retry_initial_seconds, self.s.notify_retry_max_seconds,
                                self.s.notify_retry_give_up_seconds) if verdict.go else None
        metrics.NOTIFY_FAILED.labels(rtype, verdict.reason, str(again is not None).lower()).inc()
        log.warning("notify: %s %s -> %s (%s) failed: %s%s", lead.purpose, ",".join(j.alert_id[:8] for j, _, _ in go),
                    lead.receiver, rtype, verdict.reason, "; retrying" if again else "; giving up")
        items = []
        for j, alert, _ in go:
            # not delivered, so not acknowledged either: the escalation chain starts all the same
            esc = decisions.escalation_while_undelivered(j, now)
            if again is not None:  # every member again, at the same time: the same message
                nxt = replace(j, attempt=again.attempt, due=again.due, first_try_at=again.first_try_at)
                outcome, follow, given_up = "retrying", [nxt, esc], False
            else:
                outcome, follow = "failed", [decisions.fallback(j, self.routing, now), esc]
                given_up = state == decisions.FAILED
            items.append((j, [audit.record(j, alert, outcome, verdict.reason, now, rtype, delivery_id=flight.delivery_id)],
                          [f for f in follow if f], None, False, given_up))
        await self.store.complete_many(items)
        return "retrying" if again is not None else "failed"

    # --- acknowledgements (used by the API)
    async def acknowledge(self, alert_id: str, by: str, note: str | None, via: str) -> tuple[int, dict]:
        assert self.store is not None
        alert, _ = await self.store.alert(alert_id)
        if alert is None:
            return 404, {"error": "unknown alert"}
        now = self.clock()
        ack = {"by": by, "at": audit.iso(now), "note": note, "via": via}
        rec = audit.record(Job(alert_id, "-", "ack"), alert, "acknowledged", f"acknowledged_via_{via}", now, ack=ack)
        first, first_sent = await self.store.ack(alert_id, ack, rec)
        if not first:
            return 200, {"acknowledged": True, "already": True, "ack": await self.store.get_ack(alert_id)}
        if first_sent is not None:
            metrics.NOTIFY_ACK_SECONDS.observe(max(0.0, now - first_sent))
        pending = await self.store.pending(alert_id, (ESCALATION,))
        await self.store.cancel(pending, [audit.record(j, alert, "cancelled", "acknowledged", now,
                                                       self._type(j.receiver)) for j in pending])
        log.info("notify: alert %s acknowledged via %s; %d escalations cancelled", alert_id[:8], via, len(pending))
        await self.refresh_gauges()
        return 200, {"acknowledged": True, "already": False, "ack": ack, "escalations_cancelled": len(pending)}

    # --- audit outbox and gauges
    async def _drain(self) -> None:
        assert self.store is not None and self.producer is not None
        while True:
            raw = await self.store.outbox()
            if not raw:
                await asyncio.sleep(self.s.notify_tick_seconds)
                continue
            futures = []
            for item in raw:
                rec = json.loads(item)
                futures.append(await self.producer.send(topics.NOTIFICATIONS, key=rec["alert_id"].encode(),
                                                        value=schemas.encode(rec)))
            await asyncio.wait_for(asyncio.gather(*futures), self.s.produce_timeout_seconds)
            await self.store.outbox_done(raw)

    async def _gauges(self) -> None:
        while True:
            await self.refresh_gauges()
            await asyncio.sleep(1)

    async def refresh_gauges(self) -> None:
        """Open criticals from Redis (shared by every notify replica); the oldest one's age is
        computed at scrape time from its first delivery, so it keeps rising between refreshes."""
        assert self.store is not None
        metrics.NOTIFY_OPEN_CRITICAL.set(await self.store.open_criticals())
        self._oldest_open_critical = await self.store.oldest_open_critical()

    def _oldest_open_critical_age(self) -> float:
        oldest = self._oldest_open_critical
        return 0.0 if oldest is None else max(0.0, self.clock() - oldest)

    def _type(self, receiver: str) -> str:
        sender = self.senders.get(receiver)
        return sender.type if sender else "none"

    async def _kafka_ready(self) -> bool:
        return bool(self.producer and self.consumer and
                    await self.producer.client.ready(self.producer.client.get_random_node() or 0))

    async def _redis_ready(self) -> bool:
        return bool(self.redis is not None and await self.redis.ping())

    async def _assigned(self) -> bool:
        return self.assigned


def for_pipeline(settings: Settings, app: web.Application, readiness: Readiness) -> NotifyService | None:
    """The hook for `up`: a NotifyService on the shared app when a routing file is configured
    (then ``await svc.start()`` after the HTTP server, ``await svc.stop()`` before it), else None.
    Raises RoutingError / receivers.ConfigError, which name the problem, at construction."""
    return NotifyService(settings, app, readiness) if settings.notify_routing_file else None


# ----------------------------------------------------------------------------- standalone command

def run(settings: Settings, out: TextIO = sys.stdout) -> int:
    from neutrowatch.platform.http import HttpServer, build_app
    from neutrowatch.platform.kafka import ensure_topics
    if not settings.kafka_bootstrap or not settings.redis_url:
        raise SystemExit("neutrowatch notify: give --kafka and --redis (or their NEUTROWATCH_ variables)")
    readiness = Readiness()
    app = build_app(readiness, settings.max_message_bytes)
    try:
        service = NotifyService(settings, app, readiness)
    except (routing.RoutingError, receivers.ConfigError) as exc:
        print(f"neutrowatch notify: {exc}", file=sys.stderr, flush=True)
        return 2
    ensure_topics(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        http = HttpServer(app, settings.bind_host, settings.http_port)
        try:
            await service.start()
            await http.start()
            print(f"notify: consuming {topics.ALERTS} as {settings.notify_group}; HTTP on "
                  f"http://{settings.bind_host}:{http.port}", file=out, flush=True)
            await stop.wait()
        finally:
            await asyncio.wait_for(asyncio.gather(http.stop(), service.stop(), return_exceptions=True), 8)

    asyncio.run(main())
    return 0
