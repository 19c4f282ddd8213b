"""One HL7 v2 message in, one ACK out — and every event on Kafka before an AA.

AA: every event made from the message was acknowledged by Kafka (or it was a resend of the same
    bytes). A message with no neutrophil or temperature result is accepted and ignored. A message
    of which only some tracked results could be used: those are on Kafka, each one that could not
    is on the dead-letter topic, and the AA names it in an ERR of severity W (MSA-3 counts them).
AE: the message cannot be used; the reason is in MSA-3 and ERR, the raw message is on the
    dead-letter topic. Do not resend it unchanged.
AR: Kafka could not take it (or its dead letter); nothing was kept; resend later.
"""
from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Callable

from neutrowatch.domain.codes import CodeMap
from neutrowatch.domain.events import Rejection, Source
from neutrowatch.ingest.dead_letters import dead_letter
from neutrowatch.domain.timing import DEFAULT_TOLERANCE
from neutrowatch.ingest.records import records_of
from neutrowatch.ingest.resend_guard import ResendGuard
from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.hl7v2 import Hl7Header, build_ack, parse_hl7, read_header
from neutrowatch.platform import metrics
from neutrowatch.platform.kafka import PublishError, Publisher
from neutrowatch.schemas import SchemaError

log = logging.getLogger(__name__)
CHANNEL = "mllp"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Hl7Intake:
    def __init__(self, publisher: Publisher, guard: ResendGuard, codes: CodeMap,
                 clock: Callable[[], datetime] = utcnow, default_tz: tzinfo = timezone.utc,
                 future_tolerance: timedelta = DEFAULT_TOLERANCE):
        """``default_tz``: the zone of timestamps without an offset when MSH-7 has none either
        (the ``hl7_default_timezone`` setting); ``future_tolerance``: how far ahead of the clock an
        event may be dated (``future_tolerance_seconds``)."""
        self._future_tolerance = future_tolerance
        self._publisher = publisher
        self._guard = guard
        self._codes = codes
        self._clock = clock
        self._default_tz = default_tz

    async def handle(self, raw: bytes) -> bytes:
        started = time.perf_counter()
        text, header = _decode(raw), None
        try:
            header = read_header(text)  # raises not_hl7 with the specific problem
            outcome, ack = await self._accept(text, header)
        except InputRejected as exc:
            outcome, ack = await self.refuse(raw, exc.rejection, header)
        metrics.INGEST_MESSAGES.labels(CHANNEL, outcome).inc()
        metrics.INGEST_ACK_SECONDS.labels(CHANNEL).observe(time.perf_counter() - started)
        return ack.encode("utf-8")

    async def refuse_framing(self, raw: bytes, rejection: Rejection) -> bytes:
        """A frame the MLLP layer could not read (oversized, unframed): refuse it like a bad message."""
        metrics.INGEST_MESSAGES.labels(CHANNEL, "rejected").inc()
        return (await self.refuse(raw, rejection, header_or_none(raw)))[1].encode("utf-8")

    async def refuse(self, raw: bytes, rejection: Rejection, header: Hl7Header | None) -> tuple[str, str]:
        """Dead-letter the input and answer AE; AR if even the dead letter cannot be stored."""
        metrics.INGEST_REJECTIONS.labels(CHANNEL, rejection.code).inc()
        log.info("HL7 message refused: %s (%s)", rejection.code, rejection.field or "-")
        try:
            await self._publisher.publish([dead_letter(raw, rejection, _source(header), self._clock())])
        except (PublishError, SchemaError):
            return "unavailable", self._ack(header, "AR", _UNAVAILABLE)
        return "rejected", self._ack(header, "AE", rejection)

    async def _accept(self, text: str, header: Hl7Header) -> tuple[str, str]:
        resend_key = ResendGuard.key(header.sending_application, header.sending_facility,
                                     header.message_id) if header.message_id else None
        digest = ResendGuard.digest(text)
        if resend_key:
            previous = await self._guard.previous(resend_key)
            if previous == digest:
                return "duplicate", self._ack(header, "AA", None)
            if previous is not None:
                metrics.CONTROL_ID_REUSED.inc()
                log.warning("HL7 control id reused with other content: processed as a new message")
        result = parse_hl7(text, self._codes, self._default_tz)
        now = self._clock()
        records = records_of(result.events, now, self._future_tolerance, _TIME_FIELDS)
        letters = [dead_letter(text.encode("utf-8", "surrogatepass"), problem, _source(header), now,
                               result.patient_id) for problem in result.problems]
        try:
            await self._publisher.publish(records + letters)
        except SchemaError as exc:
            raise InputRejected("schema_violation", f"normalised event fails its schema at {exc.field}: "
                                f"{exc.message}") from exc
        except PublishError:
            return "unavailable", self._ack(header, "AR", _UNAVAILABLE)
        for record in records:
            metrics.INGEST_EVENTS.labels(record.topic).inc()
        for problem in result.problems:
            metrics.INGEST_REJECTIONS.labels(CHANNEL, problem.code).inc()
        if resend_key:
            await self._guard.remember(resend_key, digest)
        return ("accepted" if records else "ignored"), self._ack(header, "AA", None, result.problems)

    def _ack(self, header: Hl7Header | None, code: str, rejection: Rejection | None,
             warnings: tuple[Rejection, ...] = ()) -> str:
        now = self._clock().strftime("%Y%m%d%H%M%S+0000")
        return build_ack(header, code, rejection, uuid.uuid4().hex[:20], now, warnings)


_UNAVAILABLE = Rejection("kafka_unavailable", "the message could not be stored (Kafka unavailable); resend later")
_TIME_FIELDS = {"collected_at": "SPM-17/OBR-7/OBX-14", "started_at": "RXA-3", "reported_at": "OBR-22",
                "birth_date": "PID-7"}


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def header_or_none(raw: bytes) -> Hl7Header | None:
    try:
        return read_header(_decode(raw[:4096]))
    except InputRejected:
        return None


def _source(header: Hl7Header | None) -> Source:
    if header is None:
        return Source(type="hl7v2")
    return Source(type="hl7v2", sending_application=header.sending_application,
                  sending_facility=header.sending_facility, message_id=header.message_id)
