"""`neutrowatch demo --exit-after-replay` as a newcomer runs it: the real embedded stack (Tansu,
redis-server, ingest, the monitor worker, notify), the bundled demo patients replayed, every alert
printed as it fires, the URLs printed, and nothing left running afterwards."""
from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from processes import NEUTROWATCH
from neutrowatch.demo import dataset
from neutrowatch.platform.embedded import free_port

pytestmark = pytest.mark.integration

ALERT_LINE = re.compile(r"^\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+(CRITICAL|WARNING|INFO)\s+(\S+)\s+(\S+)\s+(.+)$")
IDENTIFIERS = ("IVIG-01", "CYCLIC-02", "FEBRILE-03", "BEN-04", "MRN0042", "pat-ivig-1")


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = {int(k) for k in f.read().split()}
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo.extend(kids - found)
        found |= kids
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_demo_replays_the_patients_prints_their_alerts_and_stops_cleanly(tmp_path):
    http_port, mllp_port = free_port(), free_port()
    log = tmp_path / "services.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUTROWATCH_")}
    proc = subprocess.Popen([*NEUTROWATCH, "demo", "--exit-after-replay", "--http-port", str(http_port),
                             "--mllp-port", str(mllp_port), "--log-file", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    children: set[int] = set()
    watching = True

    def watch() -> None:  # every process the demo starts (broker, redis-server, monitor worker)
        while watching:
            children.update(descendants(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        output, _ = proc.communicate()
        pytest.fail("the demo did not finish in 240 s:\n" + output.decode(errors="replace")[-4000:])
    finally:
        watching = False
        watcher.join()
    took = time.monotonic() - started
    text = output.decode("utf-8", errors="replace")
    assert proc.returncode == 0, text[-4000:]

    # the replay and its summary
    replayed = re.search(r"replayed (\d+) messages in [\d.]+ s: (\d+) HL7 v2 over MLLP, (\d+) FHIR R4 over HTTP", text)
    assert replayed, text[-3000:]
    total = sum(len(s.items) for s in dataset.sections())
    assert int(replayed.group(1)) == total
    first = re.search(r"first alert after (\d+) s", text)
    assert first and int(first.group(1)) < 60, text[-3000:]

    # one line per alert; per synthetic patient exactly the kinds `analyze` finds on the same data
    lines = [m for m in (ALERT_LINE.match(line) for line in text.splitlines()) if m]
    kinds: dict[str, set[str]] = {}
    for m in lines:
        kinds.setdefault(m.group(2), set()).add(m.group(3))
    assert "post_ivig_neutropenia_pattern" in kinds["DEMOHOSP|IVIG-01"]
    assert "cyclic_neutropenia_suspected" in kinds["CYCLIC-02"]
    assert "febrile_neutropenia" in kinds["FEBRILE-03"]
    assert "DEMOHOSP|BEN-04" not in kinds, "the benign-ethnic-neutropenia patient must stay quiet"
    for p in dataset.manifest()["patients"]:
        assert kinds.get(p["key"], set()) == set(p["expect"]), p["key"]
    assert "GENHOSP|MRN0042" in kinds  # the public sample messages are replayed too
    # pages per patient: the IVIG case and the cyclic patient are paged twice (their later dips are
    # expected, recorded not paged), the febrile patient for the severe count and the fever
    for key, n in (("DEMOHOSP|IVIG-01", 2), ("CYCLIC-02", 2), ("FEBRILE-03", 2)):
        assert re.search(rf"{re.escape(key)} \d+ \({n} paged\)", text), text[-3000:]
    assert re.search(r"notify: [1-9]\d* notifications \(\d+ alerts\) delivered to the demo.s webhook receivers", text)

    # the pages and the token
    base = f"http://127.0.0.1:{http_port}"
    for url in (f"{base}/alerts", f"{base}/patients/DEMOHOSP%7CIVIG-01", f"{base}/patients/CYCLIC-02",
                f"{base}/patients/FEBRILE-03", f"{base}/patients/DEMOHOSP%7CBEN-04", f"{base}/metrics"):
        assert url in text
    assert re.search(r"acknowledge token \(this run only\): \S{16,}", text)

    # service logs went to the file, without patient identifiers
    logs = log.read_text(errors="replace")
    assert logs.strip()
    for ident in IDENTIFIERS:
        assert ident not in logs, f"{ident} in the service logs"

    # nothing left running
    assert len(children) >= 3  # broker, redis-server, monitor worker
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in children):
        time.sleep(0.1)
    assert not [p for p in children if alive(p)]
    assert took < 180
