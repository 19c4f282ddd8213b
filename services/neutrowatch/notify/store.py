"""Delivery state in Redis. Every write that decides something is one atomic step (MULTI or a
Lua script), so the Kafka offset is committed only after the decision is durable here.

Keys (prefix P): P:alert:{id} the alert; P:jobs zset of job keys by due time (a claimed job's
score is pushed out by a lease, so a crashed sender's job comes back); P:jobdata hash of jobs;
P:leased job key -> lease end (a claimed job no other claim may take); P:ajobs:{id} job keys of
an alert; P:gpend:{receiver}|{patient_key} first notices waiting in a group; P:inflight:{id} job
key -> the delivery started for it and not yet recorded (delivery id, member keys, state);
P:sent:{id} delivered job keys -> time; P:msg:{id} job key -> the message it went (or may have
gone) out in, written when that message was handed over and kept (delivery id, member keys: what
a retraction closes on a paging service); P:partly:{delivery id} what already took a message
that others refused (recipients, services; receivers.PartlyDone), for the retry window;
P:ack:{id}; P:retracted:{id} the id of the alert_retracted record that withdrew it;
P:rplanned:{id} the retraction notices of the alert are planned; P:crit:{patient_key} criticals of a patient;
P:silences; P:open_critical zset (unacknowledged, unretracted delivered criticals -> first
delivery); P:outbox audit records not yet on Kafka.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from neutrowatch.notify.decisions import (ALERT, ESCALATION, AlertState, Critical, InFlight, Job, Silence,
                                          episode_of, observed_epoch, purpose_of)

KEEP_SECONDS = 90 * 24 * 3600

# KEYS[1] = guard key; ARGV[1] = value, ARGV[2] = ttl, ARGV[3] = JSON list of commands.
_IF_NEW = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
for _, cmd in ipairs(cjson.decode(ARGV[3])) do redis.call(unpack(cmd)) end
return 1
"""
# KEYS[1] = jobs zset, KEYS[2] = jobdata hash, KEYS[3] = leased hash; ARGV = now, lease, limit.
_CLAIM = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[2])
local out = {}
for _, k in ipairs(keys) do
  local d = redis.call('HGET', KEYS[2], k)
  if d then
    redis.call('ZADD', KEYS[1], until_, k)
    redis.call('HSET', KEYS[3], k, until_)
    table.insert(out, d)
  else
    redis.call('ZREM', KEYS[1], k)
    redis.call('HDEL', KEYS[3], k)
  end
end
return out
"""
# Claim named jobs that nobody holds (group members, the other members of an in-flight message).
# KEYS as _CLAIM, KEYS[4] = a group's set (its missing jobs are removed) or ''; ARGV = now, lease,
# JSON list of job keys (empty: the group's members).
_CLAIM_KEYS = """
local now, until_ = tonumber(ARGV[1]), tonumber(ARGV[1]) + tonumber(ARGV[2])
local keys = cjson.decode(ARGV[3])
if #keys == 0 and KEYS[4] ~= '' then keys = redis.call('SMEMBERS', KEYS[4]) end
local out = {}
for _, k in ipairs(keys) do
  local d = redis.call('HGET', KEYS[2], k)
  if not d then
    if KEYS[4] ~= '' then redis.call('SREM', KEYS[4], k) end
  else
    local held = tonumber(redis.call('HGET', KEYS[3], k) or '0')
    if held <= now then
      redis.call('ZADD', KEYS[1], until_, k)
      redis.call('HSET', KEYS[3], k, until_)
      table.insert(out, d)
    end
  end
end
return out
"""
# Before handing a message to a receiver: every member job must still exist and (unless it is a
# retraction notice) its alert must not be retracted; then each member's in-flight record is
# written, and kept as the message the member went out in (P:msg, not cleared on delivery).
# ARGV[1] = prefix, ARGV[2] = JSON [{key, alert_id, purpose}], ARGV[3] = the record, ARGV[4] =
# '1' when every member must pass (a new message) or '0' (a re-send: the passing ones), ARGV[5] = ttl.
# Returns 'gone:<key>' / 'retracted:<key>' for those that did not pass; nothing is written when a
# new message has any.
_BEGIN = """
local p = ARGV[1]
local bad, ok = {}, {}
for _, m in ipairs(cjson.decode(ARGV[2])) do
  if redis.call('HEXISTS', p .. ':jobdata', m.key) == 0 then
    table.insert(bad, 'gone:' .. m.key)
  elseif m.purpose ~= 'retraction' and redis.call('EXISTS', p .. ':retracted:' .. m.alert_id) == 1 then
    table.insert(bad, 'retracted:' .. m.key)
  else
    table.insert(ok, m)
  end
end
if ARGV[4] == '1' and #bad > 0 then return bad end
for _, m in ipairs(ok) do
  redis.call('HSET', p .. ':inflight:' .. m.alert_id, m.key, ARGV[3])
  redis.call('EXPIRE', p .. ':inflight:' .. m.alert_id, ARGV[5])
  redis.call('HSET', p .. ':msg:' .. m.alert_id, m.key, ARGV[3])
  redis.call('EXPIRE', p .. ':msg:' .. m.alert_id, ARGV[5])
end
return bad
"""
# Steps of commands; a step with ``unless`` (a key) is skipped when that key exists (e.g. the
# alert was retracted meanwhile: no escalation, not an open critical). ARGV[1] = JSON steps.
_STEPS = """
for _, step in ipairs(cjson.decode(ARGV[1])) do
  if not step.unless or redis.call('EXISTS', step.unless) == 0 then
    for _, cmd in ipairs(step.cmds) do redis.call(unpack(cmd)) end
  end
end
return 1
"""


class Store:
    def __init__(self, redis, prefix: str, lease_seconds: float):
        self.r, self.p, self.lease = redis, prefix, lease_seconds
        self._if_new = redis.register_script(_IF_NEW)
        self._claim = redis.register_script(_CLAIM)
        self._claim_keys = redis.register_script(_CLAIM_KEYS)
        self._begin = redis.register_script(_BEGIN)
        self._steps = redis.register_script(_STEPS)

    def k(self, *parts: str) -> str:
        return ":".join((self.p, *parts))

    # --- intake
    async def accept(self, alert: dict, produced_at: float | None, jobs: list[Job], audits: list[dict],
                     retracts: str | None = None) -> bool:
        """Record a new alert with its jobs and audit records; False when it was seen before."""
        cmds: list[list[Any]] = [c for j in jobs for c in self._job_cmds(j)]
        cmds += [["RPUSH", self.k("outbox"), json.dumps(a)] for a in audits]
        if alert["severity"] == "critical":
            crit = json.dumps({"observed_at": observed_epoch(alert), "episode": episode_of(alert)})
            cmds += [["HSET", self.k("crit", alert["patient_key"]), alert["alert_id"], crit],
                     ["EXPIRE", self.k("crit", alert["patient_key"]), KEEP_SECONDS]]
        if retracts:  # a withdrawn critical no longer inhibits the patient's warnings
            cmds += [["SET", self.k("retracted", retracts), alert["alert_id"], "EX", KEEP_SECONDS],
                     ["ZREM", self.k("open_critical"), retracts],
                     ["HDEL", self.k("crit", alert["patient_key"]), retracts]]
        value = json.dumps({"alert": alert, "produced_at": produced_at})
        return bool(await self._if_new(keys=[self.k("alert", alert["alert_id"])],
                                       args=[value, KEEP_SECONDS, json.dumps(cmds)]))

    def _job_cmds(self, job: Job) -> list[list[Any]]:
        cmds = [["ZADD", self.k("jobs"), job.due, job.key],
                ["HSET", self.k("jobdata"), job.key, json.dumps(job.to_dict())],
                ["SADD", self.k("ajobs", job.alert_id), job.key],
                ["EXPIRE", self.k("ajobs", job.alert_id), KEEP_SECONDS]]
        if job.joinable:
            cmds += [["SADD", self.k("gpend", job.group), job.key],
                     ["EXPIRE", self.k("gpend", job.group), KEEP_SECONDS]]
        return cmds

    def _drop_cmds(self, job: Job) -> list[list[Any]]:
        cmds = [["ZREM", self.k("jobs"), job.key], ["HDEL", self.k("jobdata"), job.key],
                ["HDEL", self.k("leased"), job.key], ["SREM", self.k("ajobs", job.alert_id), job.key]]
        if job.group is not None:
            cmds.append(["SREM", self.k("gpend", job.group), job.key])
        return cmds

    async def retraction_view(self, alert_id: str) -> tuple[frozenset[str], dict[str, InFlight], list[Job]]:
        """One consistent snapshot (MULTI) of an alert's delivered job keys, in-flight deliveries and
        pending first notices and escalations: whom a retraction must tell, what it cancels."""
        pipe = self.r.pipeline(transaction=True)
        pipe.hkeys(self.k("sent", alert_id))
        pipe.hgetall(self.k("inflight", alert_id))
        pipe.smembers(self.k("ajobs", alert_id))
        sent, flying, keys = await pipe.execute()
        wanted = [k for k in keys if purpose_of(k.decode()) in (ALERT, ESCALATION)]
        data = await self.r.hmget(self.k("jobdata"), wanted) if wanted else []
        return (frozenset(k.decode() for k in sent),
                {k.decode(): InFlight.from_dict(json.loads(v)) for k, v in flying.items()},
                [Job.from_dict(json.loads(d)) for d in data if d])

    async def retraction_of(self, alert_id: str) -> dict | None:
        """The alert_retracted record that withdrew the alert (None for a flag written before
        the record's id was kept, or when the record has expired)."""
        rid = await self.r.get(self.k("retracted", alert_id))
        if rid is None or rid == b"1":
            return None
        record, _ = await self.alert(rid.decode())
        return record

    async def retraction_planned(self, alert_id: str) -> bool:
        return bool(await self.r.exists(self.k("rplanned", alert_id)))

    async def plan_retraction(self, alert_id: str, notices: list[Job], cancel: list[Job], audits: list[dict]) -> None:
        """The retraction notices and cancellations of a retracted alert, in one step."""
        cmds = [c for j in notices for c in self._job_cmds(j)] + [c for j in cancel for c in self._drop_cmds(j)]
        cmds += [["RPUSH", self.k("outbox"), json.dumps(a)] for a in audits]
        cmds += [["SET", self.k("rplanned", alert_id), "1", "EX", KEEP_SECONDS]]
        await self._steps(args=[json.dumps([{"cmds": cmds}])])

    async def pending(self, alert_id: str, purposes: Iterable[str] = (ALERT, ESCALATION)) -> list[Job]:
        keys = await self.r.smembers(self.k("ajobs", alert_id))
        wanted = [k for k in keys if purpose_of(k.decode()) in tuple(purposes)]
        data = await self.r.hmget(self.k("jobdata"), wanted) if wanted else []
        return [Job.from_dict(json.loads(d)) for d in data if d]

    async def cancel(self, jobs: list[Job], audits: list[dict]) -> None:
        cmds = [c for j in jobs for c in self._drop_cmds(j)]
        cmds += [["RPUSH", self.k("outbox"), json.dumps(a)] for a in audits]
        await self._steps(args=[json.dumps([{"cmds": cmds}])])

    # --- dispatch
    def _claim_keys_of(self) -> list[str]:
        return [self.k("jobs"), self.k("jobdata"), self.k("leased")]

    async def claim_due(self, now: float, limit: int = 50) -> list[Job]:
        data = await self._claim(keys=self._claim_keys_of(), args=[now, self.lease, limit])
        return [Job.from_dict(json.loads(d)) for d in data]

    async def claim_group(self, group: str, now: float) -> list[Job]:
        """The notices waiting in a group that no one holds, now held by this claim."""
        data = await self._claim_keys(keys=[*self._claim_keys_of(), self.k("gpend", group)],
                                      args=[now, self.lease, "[]"])
        return [Job.from_dict(json.loads(d)) for d in data]

    async def claim_jobs(self, keys: list[str], now: float) -> list[Job]:
        if not keys:
            return []
        data = await self._claim_keys(keys=[*self._claim_keys_of(), ""], args=[now, self.lease, json.dumps(keys)])
        return [Job.from_dict(json.loads(d)) for d in data]

    async def release(self, jobs: Iterable[Job], due: float | None = None) -> None:
        """Give claimed jobs back, due again at ``due`` (default: their own due time)."""
        jobs = list(jobs)
        if not jobs:
            return
        pipe = self.r.pipeline(transaction=True)
        for j in jobs:
            pipe.zadd(self.k("jobs"), {j.key: j.due if due is None else due}, xx=True)
            pipe.hdel(self.k("leased"), j.key)
        await pipe.execute()

    async def in_flight(self, jobs: Iterable[Job]) -> dict[str, InFlight]:
        """In-flight records of these jobs, by job key."""
        jobs = list(jobs)
        if not jobs:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for j in jobs:
            pipe.hget(self.k("inflight", j.alert_id), j.key)
        return {j.key: InFlight.from_dict(json.loads(raw)) for j, raw in zip(jobs, await pipe.execute()) if raw}

    async def begin(self, jobs: list[Job], record: InFlight, fresh: bool) -> dict[str, str]:
        """Mark a message in flight before the receiver is called. Returns the jobs that may not be
        sent: key -> 'gone' (cancelled meanwhile) or 'retracted'."""
        members = [{"key": j.key, "alert_id": j.alert_id, "purpose": j.purpose} for j in jobs]
        bad = await self._begin(args=[self.p, json.dumps(members), json.dumps(record.to_dict()),
                                      "1" if fresh else "0", KEEP_SECONDS])
        out = {}
        for b in bad:
            why, _, key = (b.decode() if isinstance(b, bytes) else b).partition(":")
            out[key] = why
        return out

    async def messages_of(self, alert_id: str) -> dict[str, InFlight]:
        """Job key -> the message that job of the alert went (or may have gone) out in: its
        delivery id (a paging service's dedup key / alias) and member keys."""
        raw = await self.r.hgetall(self.k("msg", alert_id))
        return {k.decode(): InFlight.from_dict(json.loads(v)) for k, v in raw.items()}

    async def retracted(self, alert_ids: Iterable[str]) -> set[str]:
        """Those of the alerts that have been withdrawn."""
        ids = sorted(set(alert_ids))
        if not ids:
            return set()
        pipe = self.r.pipeline(transaction=False)
        for a in ids:
            pipe.exists(self.k("retracted", a))
        return {a for a, hit in zip(ids, await pipe.execute()) if hit}

    # --- what took a message that others refused (receivers.PartlyDone)
    async def partly_done(self, delivery_id: str) -> set[str]:
        return {m.decode() for m in await self.r.smembers(self.k("partly", delivery_id))}

    async def keep_partly_done(self, delivery_id: str, done: Iterable[str], ttl_seconds: float) -> None:
        """Add to what took the message (a set only grows: one step, no read) and keep it for the
        retry window from now."""
        done = sorted(done)
        key = self.k("partly", delivery_id)
        pipe = self.r.pipeline(transaction=True)
        if done:
            pipe.sadd(key, *done)
        pipe.expire(key, max(1, int(ttl_seconds)))
        await pipe.execute()

    async def forget_partly_done(self, delivery_id: str) -> None:
        await self.r.delete(self.k("partly", delivery_id))

    async def mark(self, jobs: Iterable[Job], record: InFlight) -> None:
        """Record how an attempt ended (state UNKNOWN or FAILED) for a later re-send."""
        pipe = self.r.pipeline(transaction=True)
        for j in jobs:
            pipe.hset(self.k("inflight", j.alert_id), j.key, json.dumps(record.to_dict()))
        await pipe.execute()

    async def alert(self, alert_id: str) -> tuple[dict | None, float | None]:
        raw = await self.r.get(self.k("alert", alert_id))
        if raw is None:
            return None, None
        d = json.loads(raw)
        return d["alert"], d.get("produced_at")

    async def state(self, alert: dict, now: float) -> AlertState:
        pipe = self.r.pipeline(transaction=False)
        pipe.hkeys(self.k("sent", alert["alert_id"]))
        pipe.exists(self.k("ack", alert["alert_id"]))
        pipe.exists(self.k("retracted", alert["alert_id"]))
        pipe.hgetall(self.k("crit", alert["patient_key"]))
        pipe.hvals(self.k("silences"))
        pipe.hgetall(self.k("inflight", alert["alert_id"]))
        sent, acked, retracted, crits, silences, flying = await pipe.execute()
        return AlertState(
            sent=frozenset(k.decode() for k in sent), acked=bool(acked), retracted=bool(retracted),
            criticals=tuple(Critical(a.decode(), json.loads(v)["observed_at"], json.loads(v)["episode"])
                            for a, v in crits.items()),
            silences=tuple(s for s in (silence_from(json.loads(v)) for v in silences) if s.active(now)),
            in_flight=tuple(sorted((k.decode(), InFlight.from_dict(json.loads(v))) for k, v in flying.items())))

    async def complete(self, job: Job, audits: list[dict], then: Iterable[Job] = (), sent_at: float | None = None,
                       open_critical: bool = False, forget_in_flight: bool = False) -> None:
        """Finish a claimed job: drop it, record delivery, schedule what follows, queue the audit."""
        await self.complete_many([(job, audits, list(then), sent_at, open_critical, forget_in_flight)])

    async def complete_many(self, items: Iterable[tuple[Job, list[dict], list[Job], float | None, bool, bool]]) -> None:
        """Finish claimed jobs in one atomic step; each item is (job, audits, follow-up jobs, sent
        at or None, an open critical?, forget its in-flight record?). A delivery clears the in-flight
        record; an escalation and the open-critical entry are skipped when the alert was
        retracted meanwhile (a retraction racing a delivery never leaves an escalation behind); a
        retry or fallback is kept: it is cancelled, with its audit, when due."""
        steps: list[dict] = []
        for job, audits, then, sent_at, open_critical, forget in items:
            cmds = self._drop_cmds(job)
            if sent_at is not None:
                cmds += [["HSET", self.k("sent", job.alert_id), job.key, sent_at],
                         ["EXPIRE", self.k("sent", job.alert_id), KEEP_SECONDS]]
            if sent_at is not None or forget:
                cmds.append(["HDEL", self.k("inflight", job.alert_id), job.key])
            cmds += [["RPUSH", self.k("outbox"), json.dumps(a)] for a in audits]
            cmds += [c for nxt in then if nxt.purpose != ESCALATION for c in self._job_cmds(nxt)]
            steps.append({"cmds": cmds})
            later = [c for nxt in then if nxt.purpose == ESCALATION for c in self._job_cmds(nxt)]
            if sent_at is not None and open_critical:
                later.append(["ZADD", self.k("open_critical"), "NX", sent_at, job.alert_id])
            if later:
                steps.append({"unless": self.k("retracted", job.alert_id), "cmds": later})
        if steps:
            await self._steps(args=[json.dumps(steps)])

    # --- acknowledgements
    async def ack(self, alert_id: str, ack: dict, audit: dict) -> tuple[bool, float | None]:
        """(first acknowledgement?, when the alert was first delivered)."""
        key = self.k("ack", alert_id)
        if not await self.r.hsetnx(key, "at", ack["at"]):
            return False, None
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, mapping={k: v for k, v in ack.items() if v is not None})
        pipe.expire(key, KEEP_SECONDS)
        pipe.zscore(self.k("open_critical"), alert_id)
        pipe.zrem(self.k("open_critical"), alert_id)
        pipe.rpush(self.k("outbox"), json.dumps(audit))
        first = (await pipe.execute())[2]
        sent = await self.r.hvals(self.k("sent", alert_id))
        first_sent = min([float(s) for s in sent], default=None) if first is None else float(first)
        return True, first_sent

    async def get_ack(self, alert_id: str) -> dict | None:
        d = await self.r.hgetall(self.k("ack", alert_id))
        return {k.decode(): v.decode() for k, v in d.items()} or None

    async def open_criticals(self) -> int:
        return await self.r.zcard(self.k("open_critical"))

    async def oldest_open_critical(self) -> float | None:
        """First-delivery time of the oldest delivered, unacknowledged, unretracted critical alert."""
        oldest = await self.r.zrange(self.k("open_critical"), 0, 0, withscores=True)
        return float(oldest[0][1]) if oldest else None

    # --- silences
    async def put_silence(self, s: Silence) -> None:
        await self.r.hset(self.k("silences"), s.id, json.dumps(silence_dict(s)))

    async def silences(self) -> list[Silence]:
        return [silence_from(json.loads(v)) for v in await self.r.hvals(self.k("silences"))]

    async def delete_silence(self, silence_id: str) -> bool:
        return bool(await self.r.hdel(self.k("silences"), silence_id))

    # --- audit outbox
    async def outbox(self, limit: int = 200) -> list[bytes]:
        return await self.r.lrange(self.k("outbox"), 0, limit - 1)

    async def outbox_done(self, raw: list[bytes]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for item in raw:
            pipe.lrem(self.k("outbox"), 1, item)
        await pipe.execute()


def silence_dict(s: Silence) -> dict:
    return {"id": s.id, "matchers": {n: sorted(v) for n, v in s.matchers}, "starts_at": s.starts_at,
            "ends_at": s.ends_at, "created_by": s.created_by, "comment": s.comment}


def silence_from(d: dict) -> Silence:
    return Silence(d["id"], tuple((n, frozenset(v)) for n, v in sorted(d["matchers"].items())), d["ends_at"],
                   d.get("starts_at", 0.0), d.get("created_by", ""), d.get("comment", ""))


async def delivery_view(redis, prefix: str, alert_ids: list[str]) -> dict[str, dict]:
    """Read-only, for the alerts page: what notify did with each alert. ``known``: notify consumed
    it; ``sent``: [{receiver, purpose, level, at}] delivered; ``pending``: notifications still
    planned; ``acknowledged``: {by, at, note, via} or None; ``retracted``."""
    k = lambda *parts: ":".join((prefix, *parts))  # noqa: E731 (same layout as Store.k)
    pipe = redis.pipeline(transaction=False)
    for a in alert_ids:
        pipe.exists(k("alert", a))
        pipe.hgetall(k("sent", a))
        pipe.scard(k("ajobs", a))
        pipe.hgetall(k("ack", a))
        pipe.exists(k("retracted", a))
    raw = await pipe.execute() if alert_ids else []
    out = {}
    for i, a in enumerate(alert_ids):
        known, sent, pending, ack, retracted = raw[5 * i:5 * i + 5]
        rows = []
        for key, at in sent.items():
            receiver, purpose, level = key.decode().split("|", 1)[1].rsplit("|", 2)
            rows.append({"receiver": receiver, "purpose": purpose, "level": int(level), "at": float(at)})
        out[a] = {"known": bool(known), "sent": sorted(rows, key=lambda r: r["at"]), "pending": int(pending),
                  "acknowledged": {x.decode(): y.decode() for x, y in ack.items()} or None,
                  "retracted": bool(retracted)}
    return out
