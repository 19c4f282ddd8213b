"""Delivery state in Redis. Every write that decides something is one atomic step (MULTI or a
Lua script), so the Kafka offset is committed only after the decision is durable here.

Keys (prefix P): P:alert:{id} the alert; P:jobs zset of job keys by due time (a claimed job's
score is pushed out by a lease, so a crashed sender's job comes back); P:jobdata hash of jobs;
P:ajobs:{id} job keys of an alert; P:sent:{id} delivered job keys -> time; P:ack:{id};
P:retracted:{id}; P:crit:{patient_key} criticals of a patient; P:silences; P:open_critical
zset (unacknowledged delivered criticals); P:outbox audit records not yet on Kafka.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from neutrowatch.notify.decisions import (ALERT, ESCALATION, AlertState, Critical, Job, Silence, episode_of,
                                          observed_epoch)

KEEP_SECONDS = 90 * 24 * 3600

# KEYS[1] = guard key; ARGV[1] = value, ARGV[2] = ttl, ARGV[3] = JSON list of commands.
_IF_NEW = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
for _, cmd in ipairs(cjson.decode(ARGV[3])) do redis.call(unpack(cmd)) end
return 1
"""
# KEYS[1] = jobs zset, KEYS[2] = jobdata hash; ARGV = now, lease, limit.
_CLAIM = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local out = {}
for _, k in ipairs(keys) do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), k)
  local d = redis.call('HGET', KEYS[2], k)
  if d then table.insert(out, d) else redis.call('ZREM', KEYS[1], k) end
end
return out
"""


class Store:
    def __init__(self, redis, prefix: str, lease_seconds: float):
        self.r, self.p, self.lease = redis, prefix, lease_seconds
        self._if_new = redis.register_script(_IF_NEW)
        self._claim = redis.register_script(_CLAIM)

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
        if retracts:
            cmds += [["SET", self.k("retracted", retracts), "1", "EX", KEEP_SECONDS],
                     ["ZREM", self.k("open_critical"), retracts]]
        value = json.dumps({"alert": alert, "produced_at": produced_at})
        return bool(await self._if_new(keys=[self.k("alert", alert["alert_id"])],
                                       args=[value, KEEP_SECONDS, json.dumps(cmds)]))

    def _job_cmds(self, job: Job) -> list[list[Any]]:
        return [["ZADD", self.k("jobs"), job.due, job.key],
                ["HSET", self.k("jobdata"), job.key, json.dumps(job.to_dict())],
                ["SADD", self.k("ajobs", job.alert_id), job.key],
                ["EXPIRE", self.k("ajobs", job.alert_id), KEEP_SECONDS]]

    async def told(self, alert_id: str) -> list[str]:
        """Receivers that were sent the alert (first notice or escalation)."""
        keys = await self.r.hkeys(self.k("sent", alert_id))
        return sorted({k.decode().split("|")[1] for k in keys if k.decode().split("|")[2] in (ALERT, ESCALATION)})

    async def pending(self, alert_id: str, purposes: Iterable[str] = (ALERT, ESCALATION)) -> list[Job]:
        keys = await self.r.smembers(self.k("ajobs", alert_id))
        wanted = [k for k in keys if k.decode().split("|")[2] in tuple(purposes)]
        data = await self.r.hmget(self.k("jobdata"), wanted) if wanted else []
        return [Job.from_dict(json.loads(d)) for d in data if d]

    async def cancel(self, jobs: list[Job], audits: list[dict]) -> None:
        pipe = self.r.pipeline(transaction=True)
        for j in jobs:
            self._drop(pipe, j)
        for a in audits:
            pipe.rpush(self.k("outbox"), json.dumps(a))
        await pipe.execute()

    # --- dispatch
    async def claim_due(self, now: float, limit: int = 50) -> list[Job]:
        data = await self._claim(keys=[self.k("jobs"), self.k("jobdata")], args=[now, self.lease, limit])
        return [Job.from_dict(json.loads(d)) for d in data]

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
        sent, acked, retracted, crits, silences = await pipe.execute()
        return AlertState(
            sent=frozenset(k.decode() for k in sent), acked=bool(acked), retracted=bool(retracted),
            criticals=tuple(Critical(a.decode(), json.loads(v)["observed_at"], json.loads(v)["episode"])
                            for a, v in crits.items()),
            silences=tuple(s for s in (silence_from(json.loads(v)) for v in silences) if s.active(now)))

    async def complete(self, job: Job, audits: list[dict], then: Iterable[Job] = (), sent_at: float | None = None,
                       open_critical: bool = False) -> None:
        """Finish a claimed job: drop it, record delivery, schedule what follows, queue the audit."""
        pipe = self.r.pipeline(transaction=True)
        self._drop(pipe, job)
        if sent_at is not None:
            pipe.hset(self.k("sent", job.alert_id), job.key, sent_at)
            pipe.expire(self.k("sent", job.alert_id), KEEP_SECONDS)
            if open_critical:
                pipe.zadd(self.k("open_critical"), {job.alert_id: sent_at}, nx=True)
        for nxt in then:
            for cmd in self._job_cmds(nxt):
                pipe.execute_command(*cmd)
        for a in audits:
            pipe.rpush(self.k("outbox"), json.dumps(a))
        await pipe.execute()

    def _drop(self, pipe, job: Job) -> None:
        pipe.zrem(self.k("jobs"), job.key)
        pipe.hdel(self.k("jobdata"), job.key)
        pipe.srem(self.k("ajobs", job.alert_id), job.key)

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
