"""Sending like a real feed: HL7 v2 over one MLLP connection (each message waits for its ACK),
FHIR R4 as HTTP POSTs (each waits for its answer)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from hl7.mllp import open_hl7_connection

from neutrowatch.demo.dataset import Item


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    answer: str  # "AA", "AE", "HTTP 201", ...
    reason: str | None = None  # why it was refused (ERR / OperationOutcome text)


class Feeds:
    def __init__(self, mllp_port: int, http_base: str, host: str = "127.0.0.1"):
        self.host, self.mllp_port, self.http_base = host, mllp_port, http_base
        self._mllp = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Feeds":
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc) -> None:
        if self._mllp is not None:
            self._mllp[1].close()
            self._mllp = None
        if self._session is not None:
            await self._session.close()

    async def send(self, item: Item) -> Outcome:
        return await (self._hl7(item) if item.channel == "hl7" else self._fhir(item))

    async def _hl7(self, item: Item) -> Outcome:
        if self._mllp is None:
            self._mllp = await open_hl7_connection(self.host, self.mllp_port)
        reader, writer = self._mllp
        try:
            writer.writeblock(item.payload.encode("utf-8"))
            await writer.drain()
            ack = (await asyncio.wait_for(reader.readblock(), 30)).decode("utf-8", errors="replace")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            writer.close()
            self._mllp = None
            raise
        segments = ack.replace("\n", "\r").split("\r")
        msa = next((s for s in segments if s.startswith("MSA")), "MSA").split("|") + ["", "", ""]
        code = msa[1] or "?"
        return Outcome(code == "AA", code, msa[3] or None)

    async def _fhir(self, item: Item) -> Outcome:
        assert self._session is not None
        async with self._session.post(self.http_base + item.endpoint, data=item.payload.encode("utf-8"),
                                      headers={"Content-Type": "application/fhir+json"}) as response:
            body = await response.json(content_type=None)
        reason = None
        if response.status >= 300 and isinstance(body, dict):
            issue = (body.get("issue") or [{}])[0]
            reason = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
        return Outcome(response.status < 300, f"HTTP {response.status}", reason)
