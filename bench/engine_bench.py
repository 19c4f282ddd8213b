"""Detection engine benchmark: state size per patient and per-event step time.

    .venv/bin/python bench/engine_bench.py

Prints figures only (no timed asserts): a patient with a year of weekly counts, the IVIG case
(six 21-day cycles), a densely sampled cyclic patient, a temperature-heavy patient, and an\ninpatient's 300 daily counts (past the history bound).
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.scenario_builder

from neutrowatch.detection import DetectionConfig, PatientState, codec, step  # noqa: E402
from neutrowatch.domain.events import LabResult, Source  # noqa: E402
from tests import scenario_builder  # noqa: E402

T0 = datetime(2024, 1, 1, 8, tzinfo=timezone.utc)


def weekly_year():
    vals = [1800, 1600, 1400, 1250, 1500, 1700, 900, 1100, 1900, 2100]
    return [LabResult(f"LAB-2024-{i:06d}", f"e{i}", "MRN0001", "GENHOSP", "anc", vals[i % 10],
                      "cells/uL", "F", T0 + timedelta(days=7 * i), Source("canonical"))
            for i in range(52)]


def daily_300():
    """An inpatient's daily counts for 300 days (chemotherapy cycles): past the 96 counts kept, so
    every result drops one and the periodicity search runs on every result."""
    vals = [3200, 2600, 1900, 1200, 700, 300, 150, 90, 200, 600, 1400, 2500, 3400, 3600]
    return [LabResult(f"LAB-D-{i:06d}", f"d{i}", "MRN0002", "GENHOSP", "anc", vals[i % 14] + 37 * (i % 5),
                      "cells/uL", "F", T0 + timedelta(days=i, hours=i % 3), Source("canonical"))
            for i in range(300)]


def measure(name, events, config, repeat=20):
    times = []
    state = PatientState.empty()
    for _ in range(repeat):
        state = PatientState.empty()
        for ev in events:
            t = time.perf_counter()
            state, _ = step(state, ev, config)
            times.append(time.perf_counter() - t)
    size = len(json.dumps(codec.dump(state), separators=(",", ":")))
    times.sort()
    med = statistics.median(times) * 1e6
    p99 = times[int(len(times) * 0.99)] * 1e6
    print(f"{name:28s} events={len(events):4d} state={size:5d} B  step median={med:7.1f} us  "
          f"p99={p99:7.1f} us  (~{1 / statistics.mean(times):,.0f} events/s/core)")


def main():
    config = DetectionConfig()
    measure("1 year of weekly counts", weekly_year(), config)
    measure("IVIG case (6 x 21 d)", scenario_builder.ivig_case().events, config)
    measure("cyclic, 3 counts/week", scenario_builder.cyclic_dense().events, config)
    measure("febrile", scenario_builder.febrile().events, config, repeat=200)
    measure("daily counts, 300 days", daily_300(), config, repeat=3)


if __name__ == "__main__":
    main()
