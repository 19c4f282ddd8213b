"""Processor benchmark: the monitor's per-event cost without Kafka, split by stage.

    .venv/bin/python bench/processor_bench.py [--events 10000] [--batch 500] [--profile] [--default-gc]

Feeds the monitor benchmark's stream (patients x 10 weekly counts, week-major as on the topic) to
``Processor.process`` in batches, against a real (embedded) redis-server and a Kafka sender that
acknowledges at once. Prints events/s and the time per event in decode, engine step, state
load and commit (Redis round trips included) and relay, with the worker's garbage-collector settings
(``--default-gc``: Python's); ``--profile`` adds a cProfile listing.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from monitor_bench import weekly_stream  # noqa: E402

from neutrowatch import topics  # noqa: E402
from neutrowatch.detection import DetectionConfig  # noqa: E402
from neutrowatch.monitor import processor as processor_mod  # noqa: E402
from neutrowatch.monitor.processor import Processor  # noqa: E402
from neutrowatch.monitor.state_store import StateStore  # noqa: E402
from neutrowatch.platform.embedded import EmbeddedRedis  # noqa: E402


class NoKafka:
    async def send(self, records):
        return None


class Timed:
    """Wraps a callable and adds its wall time to a bucket."""

    def __init__(self, buckets, name, fn, is_async=False):
        self.buckets, self.name, self.fn, self.is_async = buckets, name, fn, is_async

    def __call__(self, *a, **k):
        if self.is_async:
            return self._acall(*a, **k)
        t = time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.buckets[self.name] = self.buckets.get(self.name, 0.0) + time.perf_counter() - t

    async def _acall(self, *a, **k):
        t = time.perf_counter()
        try:
            return await self.fn(*a, **k)
        finally:
            self.buckets[self.name] = self.buckets.get(self.name, 0.0) + time.perf_counter() - t


async def run(records, batch: int, redis_url: str, buckets: dict, profile: cProfile.Profile | None):
    from redis.asyncio import Redis
    client = Redis.from_url(redis_url)
    await client.flushall()
    store = StateStore(client)
    proc = Processor(store, NoKafka(), DetectionConfig())
    # stage timers (wrappers around the real functions; nothing else changes)
    store.load_many = Timed(buckets, "redis load", store.load_many, True)
    store.commit_many = Timed(buckets, "redis commit", store.commit_many, True)
    store.mark_sent = Timed(buckets, "redis mark_sent", store.mark_sent, True)
    proc._decode = Timed(buckets, "decode+validate", proc._decode)
    real_step = processor_mod.step
    processor_mod.step = Timed(buckets, "engine step", real_step)
    payloads = [(topics.topic_for(r), json.dumps(r).encode()) for r in records]
    started = time.perf_counter()
    if profile:
        profile.enable()
    for i in range(0, len(payloads), batch):
        await proc.process(payloads[i:i + batch])
    if profile:
        profile.disable()
    elapsed = time.perf_counter() - started
    processor_mod.step = real_step
    await client.aclose()
    return elapsed


_GC = {"time": 0.0, "collections": 0, "start": 0.0}


def _gc_timer(phase, info):
    if phase == "start":
        _GC["start"] = time.perf_counter()
    else:
        _GC["time"] += time.perf_counter() - _GC["start"]
        _GC["collections"] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--default-gc", action="store_true",
                        help="Python's garbage-collector settings instead of the worker's")
    args = parser.parse_args()
    records = weekly_stream(args.events)
    if not args.default_gc:
        from neutrowatch.monitor.worker import settle_gc
        settle_gc()
    redis = EmbeddedRedis().start()
    try:
        buckets: dict[str, float] = {}
        prof = cProfile.Profile() if args.profile else None
        gc.callbacks.append(_gc_timer)
        elapsed = asyncio.run(run(records, args.batch, redis.url, buckets, prof))
    finally:
        redis.stop()
    n = len(records)
    print(f"processor: {n} events in batches of {args.batch}: {n / elapsed:,.0f} events/s "
          f"({elapsed / n * 1e6:.1f} us/event)")
    stages = {k: v for k, v in buckets.items()}
    # the commit bucket times the whole commit (serialising the state included); step is inside
    # _step_and_commit but outside the Redis calls
    for name, total in stages.items():
        print(f"  {name:18s} {total / n * 1e6:7.1f} us/event")
    other = elapsed - sum(stages.values())
    print(f"  {'other':18s} {other / n * 1e6:7.1f} us/event  (relay, metrics, batching)")
    print(f"  {'(of which GC)':18s} {_GC['time'] / n * 1e6:7.1f} us/event  ({_GC['collections']} collections,"
          f" counted in the stage that triggered them)")
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
