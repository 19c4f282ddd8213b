"""The notify service driven end to end in memory: alert records in, messages out, with an
in-memory stand-in for Redis (the Store's Lua scripts re-stated in Python) and recording receivers.
What is asserted is what a receiver (a clinician's pager, mailbox or ward board) would get."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from neutrowatch import schemas
from neutrowatch.notify import decisions as d
from neutrowatch.notify import store as store_mod
from neutrowatch.notify.service import NotifyService
from neutrowatch.notify.store import Store
from neutrowatch.platform.health import Readiness
from neutrowatch.platform.settings import Settings

T0 = 1_700_000_000.0


# ----------------------------------------------------------------------------- in-memory Redis

def _b(v) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).encode()


class FakeRedis:
    """The commands the notify Store uses, with Redis's semantics for them (TTLs ignored)."""

    def __init__(self):
        self.data: dict[bytes, object] = {}
        self.scripts = {store_mod._IF_NEW: self._if_new, store_mod._CLAIM: self._claim,
                        store_mod._CLAIM_KEYS: self._claim_keys, store_mod._BEGIN: self._begin,
                        store_mod._STEPS: self._steps}

    # --- generic command execution (what redis.call does in a script)
    def call(self, *cmd):
        name, args = str(cmd[0]).upper(), [_b(a) for a in cmd[1:]]
        return getattr(self, "c_" + name.lower())(*args)

    def _get(self, key, kind):
        v = self.data.get(key)
        if v is None:
            v = kind()
            self.data[key] = v
        return v

    def _clean(self, key):
        if key in self.data and not self.data[key]:
            del self.data[key]

    def c_set(self, key, value, *opts):
        if b"NX" in [o.upper() for o in opts] and key in self.data:
            return None
        self.data[key] = value
        return b"OK"

    def c_get(self, key):
        return self.data.get(key)

    def c_exists(self, *keys):
        return sum(1 for k in keys if k in self.data)

    def c_expire(self, key, ttl):
        return int(key in self.data)

    def c_hset(self, key, *fv):
        h = self._get(key, dict)
        n = 0
        for f, v in zip(fv[::2], fv[1::2]):
            n += f not in h
            h[f] = v
        return n

    def c_hsetnx(self, key, f, v):
        h = self._get(key, dict)
        if f in h:
            return 0
        h[f] = v
        return 1

    def c_hget(self, key, f):
        return (self.data.get(key) or {}).get(f)

    def c_hdel(self, key, *fs):
        h = self.data.get(key) or {}
        n = sum(1 for f in fs if h.pop(f, None) is not None)
        self._clean(key)
        return n

    def c_hexists(self, key, f):
        return int(f in (self.data.get(key) or {}))

    def c_hkeys(self, key):
        return list((self.data.get(key) or {}).keys())

    def c_hvals(self, key):
        return list((self.data.get(key) or {}).values())

    def c_hgetall(self, key):
        return dict(self.data.get(key) or {})

    def c_hmget(self, key, *fs):
        h = self.data.get(key) or {}
        return [h.get(f) for f in fs]

    def c_sadd(self, key, *ms):
        s = self._get(key, set)
        n = len(set(ms) - s)
        s.update(ms)
        return n

    def c_srem(self, key, *ms):
        s = self.data.get(key) or set()
        n = len(s & set(ms))
        s.difference_update(ms)
        self._clean(key)
        return n

    def c_smembers(self, key):
        return set(self.data.get(key) or set())

    def c_scard(self, key):
        return len(self.data.get(key) or set())

    def c_zadd(self, key, *args):
        flags = []
        while args and args[0].upper() in (b"NX", b"XX", b"LT", b"GT", b"CH"):
            flags.append(args[0].upper())
            args = args[1:]
        z = self._get(key, dict)
        n = 0
        for score, m in zip(args[::2], args[1::2]):
            if (b"NX" in flags and m in z) or (b"XX" in flags and m not in z):
                continue
            n += m not in z
            z[m] = float(score)
        self._clean(key)
        return n

    def c_zrem(self, key, *ms):
        z = self.data.get(key) or {}
        n = sum(1 for m in ms if z.pop(m, None) is not None)
        self._clean(key)
        return n

    def c_zscore(self, key, m):
        return (self.data.get(key) or {}).get(m)

    def c_zcard(self, key):
        return len(self.data.get(key) or {})

    def c_zrangebyscore(self, key, lo, hi, *opts):
        z = self.data.get(key) or {}
        lo_ = float("-inf") if lo == b"-inf" else float(lo)
        hi_ = float("inf") if hi == b"+inf" else float(hi)
        out = [m for m, s in sorted(z.items(), key=lambda kv: (kv[1], kv[0])) if lo_ <= s <= hi_]
        if opts and opts[0].upper() == b"LIMIT":
            off, count = int(opts[1]), int(opts[2])
            out = out[off:off + count]
        return out

    def c_rpush(self, key, *vs):
        lst = self._get(key, list)
        lst.extend(vs)
        return len(lst)

    def c_lrange(self, key, start, stop):
        lst = self.data.get(key) or []
        stop = int(stop)
        return lst[int(start):None if stop == -1 else stop + 1]

    def c_lrem(self, key, count, value):
        lst = self.data.get(key) or []
        if value in lst:
            lst.remove(value)
            self._clean(key)
            return 1
        return 0

    # --- the Store's scripts, as their Lua does it
    def _if_new(self, keys, args):
        if self.call("SET", keys[0], args[0], "NX", "EX", args[1]) is None:
            return 0
        for cmd in json.loads(args[2]):
            self.call(*cmd)
        return 1

    def _claim(self, keys, args):
        now, lease, limit = float(args[0]), float(args[1]), int(args[2])
        out = []
        for k in self.c_zrangebyscore(_b(keys[0]), b"-inf", _b(now), b"LIMIT", b"0", _b(limit)):
            dat = self.call("HGET", keys[1], k)
            if dat:
                self.call("ZADD", keys[0], now + lease, k)
                self.call("HSET", keys[2], k, now + lease)
                out.append(dat)
            else:
                self.call("ZREM", keys[0], k)
                self.call("HDEL", keys[2], k)
        return out

    def _claim_keys(self, keys, args):
        now, until = float(args[0]), float(args[0]) + float(args[1])
        ks = [_b(k) for k in json.loads(args[2])]
        if not ks and keys[3] != "":
            ks = list(self.call("SMEMBERS", keys[3]))
        out = []
        for k in ks:
            dat = self.call("HGET", keys[1], k)
            if not dat:
                if keys[3] != "":
                    self.call("SREM", keys[3], k)
            else:
                held = float(self.call("HGET", keys[2], k) or 0)
                if held <= now:
                    self.call("ZADD", keys[0], until, k)
                    self.call("HSET", keys[2], k, until)
                    out.append(dat)
        return out

    def _begin(self, keys, args):
        p = args[0]
        bad, ok = [], []
        for m in json.loads(args[1]):
            if self.call("HEXISTS", p + ":jobdata", m["key"]) == 0:
                bad.append("gone:" + m["key"])
            elif m["purpose"] != "retraction" and self.call("EXISTS", p + ":retracted:" + m["alert_id"]) == 1:
                bad.append("retracted:" + m["key"])
            else:
                ok.append(m)
        if args[3] == "1" and bad:
            return bad
        for m in ok:
            self.call("HSET", p + ":inflight:" + m["alert_id"], m["key"], args[2])
        return bad

    def _steps(self, keys, args):
        for step in json.loads(args[0]):
            if not step.get("unless") or self.call("EXISTS", step["unless"]) == 0:
                for cmd in step["cmds"]:
                    self.call(*cmd)
        return 1

    # --- the redis-py surface
    def register_script(self, src):
        fn = self.scripts[src]

        async def run(keys=(), args=()):
            return fn(list(keys), [a if isinstance(a, str) else str(a) if not isinstance(a, bytes) else a.decode()
                                   for a in args])
        return run

    def pipeline(self, transaction=True):
        return _Pipe(self)

    def __getattr__(self, name):
        if name.startswith("c_") or name == "data":
            raise AttributeError(name)

        async def direct(*args, **kw):
            return _py(self, name, args, kw)
        return direct


def _py(r: FakeRedis, name, args, kw):
    """redis-py call shapes -> commands."""
    if name == "zadd":
        (key, mapping), flags = args, [f for f in ("nx", "xx") if kw.get(f)]
        return r.call("ZADD", key, *[f.upper() for f in flags], *[x for m, s in mapping.items() for x in (s, m)])
    if name == "hset" and "mapping" in kw:
        return r.call("HSET", args[0], *[x for f, v in kw["mapping"].items() for x in (f, v)])
    if name == "hmget":
        return r.call("HMGET", args[0], *args[1])
    if name == "zrange":
        key, start, stop = args
        z = r.data.get(_b(key)) or {}
        items = sorted(z.items(), key=lambda kv: (kv[1], kv[0]))[int(start):None if stop == -1 else stop + 1]
        return [(m, s) for m, s in items] if kw.get("withscores") else [m for m, _ in items]
    if name == "expire":
        return 1
    return r.call(name.upper(), *args)


class _Pipe:
    def __init__(self, r: FakeRedis):
        self.r, self.ops = r, []

    def __getattr__(self, name):
        def queue(*args, **kw):
            self.ops.append((name, args, kw))
            return self
        return queue

    async def execute(self):
        ops, self.ops = self.ops, []
        return [_py(self.r, n, a, k) for n, a, k in ops]


# ----------------------------------------------------------------------------- the service, in memory

class Recorder:
    """A receiver that records every message it takes; ``fail`` makes it raise instead."""

    def __init__(self, type_="webhook"):
        self.type, self.got, self.fail = type_, [], None

    async def send(self, message):
        if self.fail is not None:
            raise self.fail
        self.got.append(message)


class Harness:
    def __init__(self, tmp_path: Path, routing_yaml: str, **settings):
        path = tmp_path / "routing.yaml"
        path.write_text(routing_yaml, encoding="utf-8")
        self.now = T0
        s = Settings(notify_routing_file=path, notify_public_url="https://nw.example", **settings)
        self.svc = NotifyService(s, web.Application(), Readiness(), clock=lambda: self.now)
        self.svc.store = Store(FakeRedis(), "t", 2 * s.notify_send_timeout_seconds + 5)
        self.rx = {name: Recorder(sender.type) for name, sender in self.svc.senders.items()}
        self.svc.senders = dict(self.rx)

    def run(self, coro):
        return asyncio.run(coro)

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


def test_harness_delivers_a_critical_at_once_and_a_redelivered_alert_sends_nothing_new(tmp_path):
    h = Harness(tmp_path, EXAMPLE)
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


def test_only_critical_alerts_escalate_a_recovery_never_pages_at_night(tmp_path):
    """The issue: 'unacknowledged critical alerts escalate'. A route with an escalation chain
    (here a watched patient) also carries warnings and information: a recovery or a grade
    improvement left unacknowledged overnight must not page anyone."""
    h = Harness(tmp_path, WARD_ESCALATES)
    h.feed(alert(1, "recovery", "info", anc=1800.0), alert(2, "chronic_neutropenia", "warning", anc=900.0),
           alert(3, "severe_neutropenia", "critical", anc=400.0, at="2023-11-20T22:00:00Z"))
    h.tick()
    assert len(h.rx["oncall"].got) == 3
    h.tick(T0 + 3 * 3600)
    assert h.subjects("pager") == [
        "[NeutroWatch] ESCALATION 1: CRITICAL severe neutropenia for 123 (not acknowledged)"]


def test_a_retracted_critical_no_longer_hides_the_patients_warnings(tmp_path):
    """ANC 50 (agranulocytosis) corrected to 800: the engine withdraws the critical and raises a
    grade change to moderate. The clinician told 'retracted' must still hear about the 800."""
    h = Harness(tmp_path, EXAMPLE)
    crit = alert(1, "agranulocytosis", "critical", anc=50.0)
    h.feed(crit)
    h.tick()
    h.feed(retraction(2, crit), alert(3, "grade_change", "warning", anc=800.0))
    h.tick(T0 + 61)
    subjects = h.subjects("oncall")
    assert "[NeutroWatch] RETRACTED: agranulocytosis for 123" in subjects
    assert "[NeutroWatch] WARNING grade change for 123" in subjects


def test_a_critical_escalates_on_time_while_its_first_receiver_is_down(tmp_path):
    """The ward board (the route that carries the escalation chain) refuses connections for
    hours. The critical is not acknowledged: the pager must be told after the 30 min delay, not
    never (the board's retries end after an hour in the fallback, which already had the alert)."""
    h = Harness(tmp_path, EXAMPLE)
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


def test_an_acknowledged_critical_does_not_escalate_while_its_first_receiver_is_down(tmp_path):
    h = Harness(tmp_path, EXAMPLE)
    h.rx["board"].fail = d.DeliveryError("connection", None, "refused")
    crit = alert(1, "agranulocytosis", "critical", anc=50.0)
    h.feed(crit)
    h.tick()
    h.run(h.svc.acknowledge(crit["alert_id"], "dr who", None, "api"))
    for t in range(int(T0), int(T0 + 4000), 120):
        h.tick(float(t))
    assert h.rx["pager"].got == [] and h.rx["consultant"].got == []


def test_a_retraction_notice_says_why_the_alert_was_withdrawn(tmp_path):
    """The notice told the ward board and on-call only that the febrile neutropenia 'no longer
    holds', not what changed (here: the fever reading was deleted, the count still stands)."""
    h = Harness(tmp_path, EXAMPLE)
    crit = alert(1, "febrile_neutropenia", "critical", anc=300.0)
    h.feed(crit)
    h.tick()
    h.feed(retraction(2, crit, cause="deleted_result"))
    h.tick(T0 + 5)
    for receiver in ("board", "oncall"):
        notice = h.rx[receiver].got[-1]
        assert notice.subject == "[NeutroWatch] RETRACTED: febrile neutropenia for 123"
        assert "no longer holds (deleted result)" in notice.text
        assert notice.payload["retraction"]["evidence"]["cause"] == "deleted_result"
        assert notice.payload["alert"]["alert_id"] == crit["alert_id"]  # what is withdrawn
