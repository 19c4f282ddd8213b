"""HL7 v2 over MLLP: python-hl7's asyncio transport, one task per connection, one message at a
time per connection (each ACK before the next message is read), so a slow client only ever
holds its own connection."""
from __future__ import annotations

import asyncio
import logging

from hl7.mllp import InvalidBlockError, start_hl7_server

from neutrowatch.domain.events import Rejection
from neutrowatch.ingest.hl7_intake import Hl7Intake
from neutrowatch.platform import metrics

log = logging.getLogger(__name__)


class MllpServer:
    def __init__(self, intake: Hl7Intake, host: str, port: int, max_message_bytes: int,
                 frame_timeout_seconds: float):
        self._intake = intake
        self._host, self._port = host, port
        self._limit = max_message_bytes
        self._timeout = frame_timeout_seconds
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start(self) -> None:
        self._server = await start_hl7_server(self._serve, self._host, self._port, limit=self._limit)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader, writer) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        metrics.MLLP_CONNECTIONS.inc()
        try:
            await self._conversation(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            metrics.MLLP_CONNECTIONS.dec()
            self._connections.discard(task)
            writer.close()

    async def _conversation(self, reader, writer) -> None:
        after_oversize = False
        while True:
            try:
                block = await asyncio.wait_for(reader.readblock(), self._timeout)
            except asyncio.IncompleteReadError as exc:
                if exc.partial.strip():  # the peer hung up mid-frame: keep what came for the record
                    await self._intake.refuse(exc.partial, _TRUNCATED, None)
                return
            except asyncio.TimeoutError:
                log.info("MLLP connection closed: no complete frame within %ss", self._timeout)
                return
            except ValueError:  # over the size limit; the rest of that frame is still to come
                after_oversize = True
                ack = await self._intake.refuse_framing(b"", self._oversize())
            except InvalidBlockError:
                if after_oversize:  # the tail of the oversized frame: already answered
                    after_oversize = False
                    continue
                ack = await self._intake.refuse_framing(b"", _UNFRAMED)
            else:
                after_oversize = False
                ack = await self._intake.handle(block)
            writer.writeblock(ack)
            await writer.drain()

    def _oversize(self) -> Rejection:
        return Rejection("message_too_large", f"the message exceeds the {self._limit}-byte limit")


_TRUNCATED = Rejection("truncated_frame", "the connection closed before the MLLP end block (<FS><CR>) arrived")
_UNFRAMED = Rejection("unframed_message", "the MLLP frame does not begin with the start block <VT> (0x0B)")
