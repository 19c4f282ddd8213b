"""Recognise a resent HL7 message (same sender + MSH-10) so it produces no second event.

Fails open: when Redis does not answer, the message is still accepted (a lab feed must not stall
on a cache outage); downstream processing is idempotent on observation ids, so a resend that
slips through changes no state and raises no second alert.
"""
from __future__ import annotations

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

    async def seen(self, key: str) -> bool:
        try:
            return bool(await self._redis.exists(key))
        except (RedisError, OSError) as exc:
            metrics.DEDUP_ERRORS.inc()
            log.warning("resend check skipped: Redis unavailable (%s)", type(exc).__name__)
            return False

    async def remember(self, key: str) -> None:
        try:
            await self._redis.set(key, 1, ex=self._ttl)
        except (RedisError, OSError) as exc:
            metrics.DEDUP_ERRORS.inc()
            log.warning("resend not recorded: Redis unavailable (%s)", type(exc).__name__)
