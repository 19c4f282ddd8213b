"""`neutrowatch demo`: the whole pipeline on this machine (embedded Tansu broker and redis-server,
ingest, the monitor worker, notify), fed with the bundled demo data set the way hospital feeds
would send it (HL7 v2 over MLLP, FHIR R4 over HTTP), each alert printed as it fires, then the
pages, the API and /metrics left running until Ctrl-C.

Modules: dataset (what is sent), feeds (how), watch (alerts and monitor progress), sink (the
demo's webhook receivers), console (what is printed), runner (the order of things), generate
(writes data/)."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("demo")
    group.add_argument("--exit-after-replay", action="store_true",
                       help="stop everything once the replay, its alerts and their notifications are shown")
    group.add_argument("--speed", type=float, default=10.0, metavar="MSGS_PER_S",
                       help="messages sent per second at most (0: as fast as the pipeline takes them; "
                            "the demo always waits for the monitor to take each one) [default: 10]")
    group.add_argument("--no-samples", action="store_true",
                       help="replay only the synthetic patients, not the public sample messages in tests/fixtures")
    group.add_argument("--log-file", default=None, metavar="PATH",
                       help="where the services' logs go (default: services.log in a new temporary "
                            "directory, printed at start; '-': the terminal)")


def run(settings, args: argparse.Namespace | None = None) -> int:
    from neutrowatch.demo.runner import run as _run
    return _run(settings, args)
