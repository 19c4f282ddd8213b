"""Recognise a resent HL7 message (same sender, MSH-10 and content) so it produces no second event.

The guard remembers, per sender and MSH-10, a digest of the message: the same bytes again are a
resend; the same control id with other content (a sender whose counter reset) is a new message,
processed as such and counted (neutrowatch_ingest_control_id_reused_total).

Fails open: when Redis does not answer, the message is still accepted (a lab feed must not stall
on a cache outage); downstream processing is idempotent on observation ids, so a resend that
slips through changes no state and raises no second alert.
"""
from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from neutrowatch.domain.ids import stable_id
from neutrowatch.platform import metrics

log = logging.getLogger(__name__)


class ResendGuard:
    def __init__(self, redis: Redis, ttl_seconds: int):
        self._redis = redis
        self._ttl = ttl_seconds

    @staticmethod
    def key(sending_application: str | None, sending_facility: str | None, message_id: str) -> str:
        return "nw:ingest:hl7:" + stable_id(sending_application, sending_facility, message_id)

    @staticmethod
    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    async def previous(self, key: str) -> str | None:
        """The digest of the message last accepted under ``key``, or None."""
        try:
            value = await self._redis.get(key)
        except (RedisError, OSError) as exc:
            metrics.DEDUP_ERRORS.inc()
            log.warning("resend check skipped: Redis unavailable (%s)", type(exc).__name__)
            return None
        return None if value is None else value.decode() if isinstance(value, bytes) else str(value)

    async def remember(self, key: str, digest: str) -> None:
        try:
            await self._redis.set(key, digest, ex=self._ttl)
        except (RedisError, OSError) as exc:
            metrics.DEDUP_ERRORS.inc()
            log.warning("resend not recorded: Redis unavailable (%s)", type(exc).__name__)
