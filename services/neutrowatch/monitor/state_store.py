"""Per-patient state in Redis: load, and one atomic commit per patient.

Keys (the ``{patient_key}`` hash tag puts every key of one patient in one Redis Cluster slot):

    nw:{<patient_key>}:state   hash  ver -> commit counter, doc -> detection.codec.dump(state) JSON,
                                     meta -> monitor-side facts the engine does not keep
                                     (observation ids of derived ANCs, for the timeline)
    nw:{<patient_key>}:alerts  hash  alert_id -> alert record JSON (every alert ever emitted)
    nw:{<patient_key>}:outbox  hash  alert_id -> alert record JSON, until Kafka acknowledged it

A commit is a Lua script over those three keys: it applies only if ``ver`` is still the version
the caller loaded (optimistic concurrency: during a rebalance two workers may briefly hold the
same patient; the loser reloads and re-steps). Alerts are written with HSETNX semantics for the
alert index, so a redelivered event can never change a recorded alert. On a single Redis the
commits of a whole batch are one script call (each patient still checked and applied on its own,
the batch as a whole atomic); on a Redis Cluster, whose scripts may only touch one slot, they are
one script call per patient.

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

from neutrowatch.detection import PatientState, codec
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


# The same for many patients in one call (single Redis only): KEYS are (state, alerts, outbox) per
# patient; ARGV per patient: version, doc, meta, number of alerts, then (id, record) pairs. Returns
# the new versions (-1 where refused) comma-separated: one bulk reply is cheap to parse.
_COMMIT_BATCH = """
local out = {}
local a = 1
for p = 0, #KEYS / 3 - 1 do
  local ks, ka, ko = KEYS[3 * p + 1], KEYS[3 * p + 2], KEYS[3 * p + 3]
  local n = tonumber(ARGV[a + 3])
  local ver = tonumber(redis.call('HGET', ks, 'ver') or '0')
  if ver ~= tonumber(ARGV[a]) then
    out[#out + 1] = -1
  else
    redis.call('HSET', ks, 'ver', ver + 1, 'doc', ARGV[a + 1], 'meta', ARGV[a + 2])
    for i = a + 4, a + 3 + 2 * n, 2 do
      if redis.call('HSETNX', ka, ARGV[i], ARGV[i + 1]) == 1 then
        redis.call('HSET', ko, ARGV[i], ARGV[i + 1])
      end
    end
    out[#out + 1] = ver + 1
  end
  a = a + 4 + 2 * n
end
return table.concat(out, ',')
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
        self._commit_batch = redis.register_script(_COMMIT_BATCH)

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

    async def commit_many(self, commits: list[Commit]) -> list[int]:
        """Each patient's commit applied atomically, all in one round trip (on a single Redis one
        script call for the batch); per commit the new version, or -1 where the state changed under
        us (the caller reloads that patient and steps its events again)."""
        if not commits:
            return []
        started = time.perf_counter()
        if self._cluster:
            calls = []
            for c in commits:
                pk = c.loaded.patient_key
                args: list[Any] = [c.loaded.version, _dumps(codec.dump(c.state)), _dumps(c.meta)]
                for alert in c.alerts:
                    args += [alert["alert_id"], _dumps(alert)]
                calls.append(([state_key(pk), alerts_key(pk), outbox_key(pk)], args))
            # redis-py cannot pipeline scripts on a cluster: run them concurrently instead.
            results = [int(r) for r in
                       await asyncio.gather(*(self._commit(keys=k, args=a) for k, a in calls))]
        else:
            keys: list[str] = []
            args = []
            for c in commits:
                pk = c.loaded.patient_key
                keys += [state_key(pk), alerts_key(pk), outbox_key(pk)]
                args += [c.loaded.version, _dumps(codec.dump(c.state)), _dumps(c.meta), len(c.alerts)]
                for alert in c.alerts:
                    args += [alert["alert_id"], _dumps(alert)]
            reply = await self._commit_batch(keys=keys, args=args)
            results = [int(v) for v in _text(reply).split(",")]
        metrics.MONITOR_REDIS_SECONDS.labels("commit").observe(time.perf_counter() - started)
        return results

    # ------------------------------------------------------------------ outbox and index
    async def outbox_keys(self) -> list[str]:
        return [k.decode() if isinstance(k, bytes) else k
                async for k in self.redis.scan_iter(match="nw:{*}:outbox", count=1000)]

    async def pending(self, patient_key: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(outbox_key(patient_key))
        return [json.loads(v) for v in raw.values()]

    async def mark_sent(self, alerts: list[dict[str, Any]]) -> None:
        """Index the acknowledged alerts for the API, then clear them from their outboxes (a few
        commands per batch: one ZADD per index, one HSET, one HDEL per patient)."""
        if not alerts:
            return
        started = time.perf_counter()
        indexes: dict[str, dict[str, float]] = {INDEX: {}}
        patient_of: dict[str, str] = {}
        outboxes: dict[str, list[str]] = {}
        for a in alerts:
            aid, score = a["alert_id"], _epoch(a["observed_at"])
            indexes[INDEX][aid] = score
            indexes.setdefault(kind_index(a["kind"]), {})[aid] = score
            indexes.setdefault(severity_index(a["severity"]), {})[aid] = score
            patient_of[aid] = a["patient_key"]
            outboxes.setdefault(outbox_key(a["patient_key"]), []).append(aid)
        async with self.redis.pipeline(transaction=False) as pipe:
            for index, members in indexes.items():
                pipe.zadd(index, members)
            pipe.hset(PATIENT_OF_ALERT, mapping=patient_of)
            for key, ids in outboxes.items():
                pipe.hdel(key, *ids)
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
    return Loaded(pk, codec.load(json.loads(doc)), int(ver), json.loads(meta) if meta else {})


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> str:
    """Compact JSON (``json.dumps`` with these options builds an encoder per call)."""
    return _ENCODER.encode(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
