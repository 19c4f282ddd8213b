"""Per-patient state in Redis: load, and one atomic commit per patient.

Keys (the ``{patient_key}`` hash tag puts every key of one patient in one Redis Cluster slot):

    nw:{<patient_key>}:state   hash  ver -> commit counter, doc -> PatientState.to_dict() JSON,
                                     meta -> monitor-side facts the engine does not keep
                                     (observation ids of derived ANCs, for the timeline)
    nw:{<patient_key>}:alerts  hash  alert_id -> alert record JSON (every alert ever emitted)
    nw:{<patient_key>}:outbox  hash  alert_id -> alert record JSON, until Kafka acknowledged it

A commit is a Lua script over those three keys: it applies only if ``ver`` is still the version
the caller loaded (optimistic concurrency: during a rebalance two workers may briefly hold the
same patient; the loser reloads and re-steps). Alerts are written with HSETNX semantics for the
alert index, so a redelivered event can never change a recorded alert.

The global alert index for the API (cross-slot, so not part of the atomic commit) is written by
the relay after Kafka acknowledged the alert and before the outbox entry is cleared, so a crash
in between repeats it (the writes are idempotent):

    nw:alerts:index            zset  alert_id -> observed_at (epoch seconds)
    nw:alerts:kind:<kind>      zset  same, per kind
    nw:alerts:severity:<sev>   zset  same, per severity
    nw:alerts:patient          hash  alert_id -> patient_key
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from redis.asyncio.cluster import RedisCluster

from neutrowatch.detection import PatientState
from neutrowatch.platform import metrics

INDEX = "nw:alerts:index"
PATIENT_OF_ALERT = "nw:alerts:patient"

_COMMIT = """
local ver = tonumber(redis.call('HGET', KEYS[1], 'ver') or '0')
if ver ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'ver', ver + 1, 'doc', ARGV[2], 'meta', ARGV[3])
for i = 4, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
return ver + 1
"""


def state_key(patient_key: str) -> str:
    return f"nw:{{{patient_key}}}:state"


def alerts_key(patient_key: str) -> str:
    return f"nw:{{{patient_key}}}:alerts"


def outbox_key(patient_key: str) -> str:
    return f"nw:{{{patient_key}}}:outbox"


def kind_index(kind: str) -> str:
    return f"nw:alerts:kind:{kind}"


def severity_index(severity: str) -> str:
    return f"nw:alerts:severity:{severity}"


def patient_of(key: str) -> str:
    """``nw:{SCEN|p1}:outbox`` -> ``SCEN|p1``."""
    return key[key.index("{") + 1:key.rindex("}")]


@dataclass
class Loaded:
    """A patient's state as read, with the version a commit must still find."""

    patient_key: str
    state: PatientState
    version: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Commit:
    loaded: Loaded
    state: PatientState
    alerts: list[dict[str, Any]]  # alert records
    meta: dict[str, Any]


class StateStore:
    """The Redis adapter of the monitor (redis.asyncio client or cluster client)."""

    def __init__(self, redis):
        self.redis = redis
        self._cluster = isinstance(redis, RedisCluster)
        self._commit = redis.register_script(_COMMIT)

    async def load_many(self, patient_keys: Iterable[str]) -> dict[str, Loaded]:
        keys = list(dict.fromkeys(patient_keys))
        started = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for pk in keys:
                pipe.hmget(state_key(pk), "ver", "doc", "meta")
            rows = await pipe.execute()
        metrics.MONITOR_REDIS_SECONDS.labels("load").observe(time.perf_counter() - started)
        return {pk: _loaded(pk, row) for pk, row in zip(keys, rows)}

    async def load(self, patient_key: str) -> Loaded:
        return (await self.load_many([patient_key]))[patient_key]

    async def commit_many(self, commits: list[Commit]) -> list[bool]:
        """One atomic script per patient, all in one round trip; False where the state changed
        under us (the caller reloads that patient and steps its events again)."""
        if not commits:
            return []
        started = time.perf_counter()
        calls = []
        for c in commits:
            pk = c.loaded.patient_key
            args: list[Any] = [c.loaded.version, _dumps(c.state.to_dict()), _dumps(c.meta)]
            for alert in c.alerts:
                args += [alert["alert_id"], _dumps(alert)]
            calls.append(([state_key(pk), alerts_key(pk), outbox_key(pk)], args))
        if self._cluster:
            # redis-py cannot pipeline scripts on a cluster: run them concurrently instead.
            results = await asyncio.gather(*(self._commit(keys=k, args=a) for k, a in calls))
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for keys, args in calls:
                    await self._commit(keys=keys, args=args, client=pipe)
                results = await pipe.execute()
        metrics.MONITOR_REDIS_SECONDS.labels("commit").observe(time.perf_counter() - started)
        return [int(r) >= 0 for r in results]

    # ------------------------------------------------------------------ outbox and index
    async def outbox_keys(self) -> list[str]:
        return [k.decode() if isinstance(k, bytes) else k
                async for k in self.redis.scan_iter(match="nw:{*}:outbox", count=1000)]

    async def pending(self, patient_key: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(outbox_key(patient_key))
        return [json.loads(v) for v in raw.values()]

    async def mark_sent(self, alerts: list[dict[str, Any]]) -> None:
        """Index the acknowledged alerts for the API, then clear them from their outboxes."""
        if not alerts:
            return
        started = time.perf_counter()
        async with self.redis.pipeline(transaction=False) as pipe:
            for a in alerts:
                score = _epoch(a["observed_at"])
                pipe.zadd(INDEX, {a["alert_id"]: score})
                pipe.zadd(kind_index(a["kind"]), {a["alert_id"]: score})
                pipe.zadd(severity_index(a["severity"]), {a["alert_id"]: score})
                pipe.hset(PATIENT_OF_ALERT, a["alert_id"], a["patient_key"])
            for a in alerts:
                pipe.hdel(outbox_key(a["patient_key"]), a["alert_id"])
            await pipe.execute()
        metrics.MONITOR_REDIS_SECONDS.labels("mark_sent").observe(time.perf_counter() - started)

    # ------------------------------------------------------------------ reads for the API
    async def alert(self, alert_id: str) -> dict[str, Any] | None:
        pk = await self.redis.hget(PATIENT_OF_ALERT, alert_id)
        if pk is None:
            return None
        raw = await self.redis.hget(alerts_key(_text(pk)), alert_id)
        return json.loads(raw) if raw else None

    async def patient_alerts(self, patient_key: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(alerts_key(patient_key))
        return [json.loads(v) for v in raw.values()]

    async def alerts_by_ids(self, ids: list[str]) -> list[dict[str, Any] | None]:
        """Aligned with ``ids`` (None where an alert is not found)."""
        if not ids:
            return []
        pks = await self.redis.hmget(PATIENT_OF_ALERT, ids)
        async with self.redis.pipeline(transaction=False) as pipe:
            for aid, pk in zip(ids, pks):
                pipe.hget(alerts_key(_text(pk) if pk is not None else ""), aid)
            raws = await pipe.execute()
        return [json.loads(r) if r else None for r in raws]

    async def index_page(self, index: str, since: float | None, offset: int, count: int) -> list[str]:
        ids = await self.redis.zrevrangebyscore(index, "+inf", since if since is not None else "-inf",
                                                start=offset, num=count)
        return [_text(i) for i in ids]


def _loaded(pk: str, row: list) -> Loaded:
    ver, doc, meta = row
    if doc is None:
        return Loaded(pk, PatientState.empty(), int(ver or 0), {})
    return Loaded(pk, PatientState.from_dict(json.loads(doc)), int(ver), json.loads(meta) if meta else {})


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
