"""`neutrowatch demo`: start the embedded stack, replay the bundled real sample messages the way
a lab feed would (HL7 over MLLP, FHIR over HTTP), show what each got back and what landed on
Kafka, then keep running so the endpoints can be tried."""
from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import TextIO

import aiohttp
from hl7.mllp import open_hl7_connection

from neutrowatch import topics
from neutrowatch.parsing.hl7v2 import split_messages
from neutrowatch.platform.kafka import ensure_topics
from neutrowatch.platform.settings import Settings
from neutrowatch.up import Pipeline, servers

SAMPLES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
LOCAL_CODES = Path(__file__).resolve().parents[2] / "config" / "local-codes.example.yaml"


async def send_hl7(port: int, path: Path, out: TextIO) -> None:
    reader, writer = await open_hl7_connection("127.0.0.1", port)
    try:
        for text in split_messages(path.read_bytes()):
            writer.writeblock(text.encode("utf-8"))
            await writer.drain()
            ack = (await reader.readblock()).decode("utf-8", errors="replace")
            msa = next((s for s in ack.replace("\n", "\r").split("\r") if s.startswith("MSA")), "MSA")
            fields = msa.split("|") + ["", "", ""]
            reason = f" — {fields[3]}" if fields[3] else ""
            print(f"  HL7  {path.name:60} {fields[1]}{reason}", file=out)
    finally:
        writer.close()


async def send_fhir(session: aiohttp.ClientSession, base: str, path: Path, out: TextIO) -> None:
    resource = json.loads(path.read_text(encoding="utf-8-sig"))
    endpoint = "/fhir" if resource.get("resourceType") == "Bundle" else f"/fhir/{resource.get('resourceType')}"
    async with session.post(base + endpoint, json=resource) as response:
        body = await response.json(content_type=None)
    issue = (body.get("issue") or [{}])[0] if isinstance(body, dict) else {}
    reason = f" — {issue.get('diagnostics')}" if issue.get("severity") == "error" else ""
    print(f"  FHIR {path.name:60} HTTP {response.status}{reason}", file=out)


async def show_landed(bootstrap: str, out: TextIO) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topics.LAB_RESULTS, p) for p in consumer.partitions_for_topic(topics.LAB_RESULTS) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        batches = await consumer.getmany(*tps, timeout_ms=3000)
        records = sorted((json.loads(m.value) for ms in batches.values() for m in ms),
                         key=lambda r: r["collected_at"])
    finally:
        await consumer.stop()
    print(f"\n{len(records)} normalised result(s) on {topics.LAB_RESULTS}:", file=out)
    for r in records:
        value = f"{r['value']:,.0f} cells/µL" if r["analyte"] == "anc" else f"{r['value']:.1f} °C"
        print(f"  {r['patient_key']:32} {r['analyte']:16} {value:>18}  {r['provenance']:8} "
              f"collected {r['collected_at']}  status {r['status']}", file=out)


async def _run(settings: Settings, out: TextIO, keep_running: bool) -> None:
    pipeline = Pipeline(settings)
    await pipeline.start(out)
    try:
        print("\nreplaying the bundled real sample messages:", file=out)
        for path in sorted((SAMPLES / "hl7").glob("*.hl7")):
            await send_hl7(pipeline.ingest.mllp.port, path, out)
        base = f"http://127.0.0.1:{pipeline.http.port}"
        async with aiohttp.ClientSession() as session:
            for path in sorted((SAMPLES / "fhir").glob("*.json")):
                await send_fhir(session, base, path, out)
        await show_landed(settings.kafka_bootstrap, out)
        print(f"\nmetrics: {base}/metrics   readiness: {base}/readyz", file=out)
        if keep_running:
            print("running; Ctrl-C stops everything", file=out, flush=True)
            stop = asyncio.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        await pipeline.stop()


def run(settings: Settings, keep_running: bool = True, out: TextIO = sys.stdout) -> int:
    if settings.local_codes_file is None and LOCAL_CODES.exists():
        settings = settings.model_copy(update={"local_codes_file": LOCAL_CODES})
    with servers(settings, out) as resolved:
        ensure_topics(resolved)
        asyncio.run(_run(resolved, out, keep_running))
    return 0
