"""Alert-equivalence corpus: every alert the engine emits, as sorted JSON, for a fixed corpus.

    PYTHONPATH=<tree>/services .venv/bin/python bench/alert_equivalence.py OUT.ndjson

Run it against two trees (e.g. a git worktree of the commit before an engine change, and the
working tree) and compare the outputs byte for byte (``cmp``): an engine optimisation must not
change a single alert. The corpus:

* every tests/scenarios/*.ndjson with its config, in file order, step by step;
* the same with the state round-tripped through JSON after every event (as the monitor does);
* the same in 6 seeded permutations, and with every event delivered twice;
* the same in batches through the monitor's per-patient step loop (processor._step_patient);
* a seeded synthetic corpus of 400 patients (ANC with P/F/C/D versions, late and duplicate
  results, temperatures, IVIG, watched drugs, infants, long histories that hit the bounds) under
  three configurations (default, eu profile, per-patient overrides);
* the benchmark's weekly stream.

Each line is ``label<TAB>alert record JSON``; a final-state digest per run goes to OUT.states.
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from neutrowatch.detection import DetectionConfig, PatientState, codec, step  # noqa: E402
from neutrowatch.domain.events import (Coding, Dose, LabResult, MedicationAdministration,  # noqa: E402
                                       Source, event_from_record)

SCEN = ROOT / "tests" / "scenarios"
T0 = datetime(2023, 3, 1, 8, tzinfo=timezone.utc)
SRC = Source("canonical", "equivalence")


def dump(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def run(events, config, roundtrip=False, twice=False):
    states: dict[str, PatientState] = {}
    out = []
    for ev in events:
        for _ in range(2 if twice else 1):
            st = states.get(ev.patient_key) or PatientState.empty()
            if roundtrip:
                st = codec.load(json.loads(dump(codec.dump(st))))
            try:
                st, alerts = step(st, ev, config)
            except Exception as exc:  # the monitor skips such an event: record that it failed
                out.append({"error": type(exc).__name__, "event_id": ev.event_id})
                continue
            states[ev.patient_key] = st
            out += [a.to_record() for a in alerts]
    return out, states


def digest(states) -> str:
    h = hashlib.sha256()
    for k in sorted(states):
        h.update(dump(codec.dump(states[k])).encode())
    return h.hexdigest()[:16]


def scenarios():
    for path in sorted(SCEN.glob("*.ndjson")):
        cfg_path = SCEN / f"{path.stem}.config.json"
        config = DetectionConfig.from_mapping(json.loads(cfg_path.read_text())) if cfg_path.exists() \
            else DetectionConfig()
        events = [event_from_record(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
        yield path.stem, events, config


# ---------------------------------------------------------------------------- synthetic corpus

ANC = [0, 40, 90, 150, 300, 450, 499, 500, 700, 950, 999, 1000, 1200, 1450, 1500, 1600, 1799, 1800,
       2100, 2400, 3500, 5200]
DRUGS = [("ivig", "J06BA02"), ("rituximab", "L01FA01"), ("clozapine", "N05AH02"),
         ("gcsf", "L03AA02"), ("antithyroid", "H03BB02"), ("paracetamol", "N02BE01")]


def synthetic(seed: int, patients: int = 400):
    rng = random.Random(seed)
    events = []
    for p in range(patients):
        pid = f"s{p:04d}"
        aa = rng.choice(["SYN", "OTHER", None])
        bd = rng.choice([None, None, None, "2023-01-15", "1980-05-02", "2022-11"])
        n = rng.choice([5, 12, 30, 60, 120, 160])
        spacing = rng.choice([0.3, 1, 2.5, 7, 14])
        day = 0.0
        pe = []
        obs_made = []
        for i in range(n):
            day += spacing * rng.uniform(0.3, 1.7)
            r = rng.random()
            if r < 0.7:
                oid = f"{pid}-o{i:04d}"
                status = "P" if rng.random() < 0.1 else "F"
                v = float(rng.choice(ANC))
                rep = T0 + timedelta(days=day, hours=rng.randint(1, 30)) if rng.random() < 0.3 else None
                pe.append(LabResult(oid, f"{oid}-{status}", pid, aa, "anc", v, "cells/uL", status,
                                    T0 + timedelta(days=day), SRC, reported_at=rep, birth_date=bd))
                obs_made.append(pe[-1])
            elif r < 0.8 and obs_made:
                base = rng.choice(obs_made)
                st = rng.choice(["F", "C", "C", "D", "X"])
                val = None if st in ("D", "X") else float(rng.choice(ANC))
                pe.append(LabResult(base.observation_id, f"{base.observation_id}-{st}{i}", pid, aa, "anc",
                                    val, "cells/uL", st, base.collected_at, SRC,
                                    reported_at=base.collected_at + timedelta(hours=rng.randint(2, 90)),
                                    birth_date=bd))
            elif r < 0.9:
                oid = f"{pid}-t{i:04d}"
                pe.append(LabResult(oid, f"{oid}-F", pid, aa, "body_temperature",
                                    rng.choice([36.8, 37.5, 38.0, 38.1, 38.4, 39.2]), "Cel", "F",
                                    T0 + timedelta(days=day, minutes=rng.randint(-300, 300)), SRC))
            else:
                cls, code = rng.choice(DRUGS)
                aid = f"{pid}-a{i:04d}"
                start = T0 + timedelta(days=day)
                mg = rng.choice([None, 400.0, 1000.0, 2000.0])
                status = rng.choice(["completed"] * 6 + ["in-progress", "stopped", "not-done"])
                pe.append(MedicationAdministration(aid, f"{aid}-e", pid, aa, Coding(code, None, cls), cls,
                                                   start, status, SRC,
                                                   start + timedelta(hours=rng.choice([1, 4, 30])),
                                                   Dose(mg, "mg/kg", mg_per_kg=mg) if mg else None))
        # arrival order: mostly in order, some late, some duplicated
        order = list(pe)
        for _ in range(len(order) // 8):
            i = rng.randrange(len(order))
            j = min(len(order) - 1, i + rng.randint(1, 20))
            order.insert(j, order.pop(i))
        for _ in range(len(order) // 15):
            order.insert(rng.randrange(len(order) + 1), rng.choice(pe))
        events.append(order)
    # interleave patients as a feed would
    out = []
    queues = [list(x) for x in events]
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


CONFIGS = {
    "default": DetectionConfig(),
    "eu": DetectionConfig.from_mapping({"profile": "eu"}),
    "overrides": DetectionConfig.from_mapping({
        "patients": {f"SYN|s{i:04d}": {"baseline_anc": 1100} for i in range(0, 400, 7)}
        | {f"OTHER|s{i:04d}": {"normal_threshold": 1200, "profile": "eu"} for i in range(3, 400, 11)},
        "history_max_anc": 40, "history_days": 120}),
}


def bench_stream():
    rng = random.Random(1)
    T = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)
    out = []
    patients = [f"p{i:06d}-1" for i in range(300)]
    for week in range(10):
        for p in patients:
            v = float(rng.choice([rng.randint(1800, 6000)] * 9 + [rng.randint(200, 1400)]))
            oid = f"{p}-o{week:03d}"
            out.append(LabResult(oid, f"{oid}-F", p, "BENCH", "anc", v, "cells/uL", "F",
                                 T + timedelta(days=7 * week), SRC))
    return out


def batched(events, config, seed):
    """The monitor's path: batches of events grouped per patient, state JSON between batches."""
    from neutrowatch.monitor.processor import Decoded, Processor
    from neutrowatch.monitor.state_store import Loaded
    proc = Processor(None, None, config)
    rng = random.Random(seed)
    docs: dict[str, dict] = {}
    out = []
    i = 0
    while i < len(events):
        n = rng.choice([1, 3, 17, 64])
        batch = events[i:i + n]
        i += n
        by: dict[str, list] = {}
        for ev in batch:
            by.setdefault(ev.patient_key, []).append(Decoded(ev, None))
        for pk, evs in by.items():
            doc = docs.get(pk)
            st = codec.load(json.loads(dump(doc))) if doc else PatientState.empty()
            commit, _ = proc._step_patient(Loaded(pk, st), evs)
            if commit is not None:
                docs[pk] = codec.dump(commit.state)
                out += commit.alerts
    return out


class _Version(int):
    """A commit result: the new version, or -1; truthy when applied (older processors test
    truthiness, newer ones compare with 0)."""

    def __bool__(self) -> bool:
        return self >= 0


class FakeStore:
    """The monitor's StateStore in memory: JSON docs with versions; every ``bump_every``-th commit
    another worker (same content, next version) gets in first, so the processor's commit is refused
    and the patient reloaded."""

    def __init__(self, bump_every: int = 0):
        self.docs: dict[str, tuple[int, str, str]] = {}
        self.commits, self.bump_every, self.conflicts = 0, bump_every, 0

    async def load_many(self, keys):
        from neutrowatch.monitor.state_store import Loaded
        out = {}
        for pk in dict.fromkeys(keys):
            ver, doc, meta = self.docs.get(pk, (0, None, None))
            out[pk] = Loaded(pk, codec.load(json.loads(doc)) if doc else PatientState.empty(),
                             ver, json.loads(meta) if meta else {})
        return out

    async def commit_many(self, commits):
        out = []
        for c in commits:
            pk = c.loaded.patient_key
            ver = self.docs.get(pk, (0,))[0]
            self.commits += 1
            if self.bump_every and self.commits % self.bump_every == 0 and pk in self.docs:
                ver += 1
                self.docs[pk] = (ver, *self.docs[pk][1:])
                self.conflicts += 1
            if ver != c.loaded.version:
                out.append(_Version(-1))
                continue
            self.docs[pk] = (ver + 1, dump(codec.dump(c.state)), dump(c.meta))
            out.append(_Version(ver + 1))
        return out


def processed(events, config, seed, bump_every=0):
    """The monitor's Processor end to end (decode, grouping, state cache, commits) on a store in
    memory; batches of seeded random sizes. Returns the alert records in the order committed."""
    import asyncio
    from neutrowatch import topics
    from neutrowatch.monitor.processor import Processor

    class Collect:
        def __init__(self):
            self.records = []

        async def send(self, records):
            self.records += [r.value for r in records if r.topic == topics.ALERTS]

    async def go():
        store, sender = FakeStore(bump_every), Collect()
        store.mark_sent = _noop
        # a clock after every event of the corpus: its synthetic years are not refused as future
        proc = Processor(store, sender, config, clock=lambda: datetime(3000, 1, 1, tzinfo=timezone.utc))
        rng = random.Random(seed)
        payloads = [(topics.topic_for(r), dump(r).encode()) for r in (e.to_record() for e in events)]
        i = 0
        while i < len(payloads):
            n = rng.choice([1, 3, 17, 64, 500])
            await proc.process(payloads[i:i + n])
            i += n
        return sender.records
    return asyncio.run(go())


async def _noop(*_a, **_k):
    return None


def main() -> None:
    target = Path(sys.argv[1])
    lines, states = [], []

    def emit(label, alerts, st=None):
        lines.extend(f"{label}\t{dump(a)}" for a in alerts)
        if st is not None:
            states.append(f"{label}\t{len(alerts)}\t{digest(st)}")

    for name, events, config in scenarios():
        a, st = run(events, config)
        emit(f"scen:{name}", a, st)
        a, st = run(events, config, roundtrip=True)
        emit(f"scen-json:{name}", a, st)
        a, st = run(events, config, twice=True)
        emit(f"scen-twice:{name}", a, st)
        for seed in range(6):
            perm = list(events)
            random.Random(seed).shuffle(perm)
            a, st = run(perm, config)
            emit(f"scen-perm{seed}:{name}", a, st)
        emit(f"scen-batched:{name}", batched(events, config, 1))
        emit(f"scen-proc:{name}", processed(events, config, 1))
        emit(f"scen-proc-conflicts:{name}", processed(events, config, 2, bump_every=3))
    for seed in (11, 12):
        events = synthetic(seed)
        for cname, config in CONFIGS.items():
            a, st = run(events, config)
            emit(f"syn{seed}:{cname}", a, st)
        a, st = run(events, CONFIGS["default"], roundtrip=True)
        emit(f"syn{seed}-json:default", a, st)
        emit(f"syn{seed}-batched:default", batched(events, CONFIGS["default"], seed))
        emit(f"syn{seed}-proc:default", processed(events, CONFIGS["default"], seed))
        emit(f"syn{seed}-proc-conflicts:default", processed(events, CONFIGS["default"], seed, bump_every=7))
    a, st = run(bench_stream(), DetectionConfig())
    emit("bench", a, st)
    target.write_text("\n".join(lines) + "\n")
    Path(str(target) + ".states").write_text("\n".join(states) + "\n")
    print(f"{len(lines)} alerts written to {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
