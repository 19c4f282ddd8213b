"""The ingest service wired once: publisher, resend guard, HL7/MLLP and FHIR/HTTP intakes."""
from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from aiohttp import web
from redis.asyncio import Redis

from neutrowatch.ingest.fhir_http import FhirIntake
from neutrowatch.ingest.hl7_intake import Hl7Intake
from neutrowatch.ingest.mllp import MllpServer
from neutrowatch.ingest.resend_guard import ResendGuard
from neutrowatch.parsing.fhir import PatientIdentity
from neutrowatch.platform.config_files import load_code_map
from neutrowatch.platform.health import Readiness
from neutrowatch.platform.kafka import Publisher
from neutrowatch.platform.settings import Settings


class IngestService:
    def __init__(self, settings: Settings, app: web.Application, readiness: Readiness, redis: Redis):
        codes = load_code_map(settings.local_codes_file)
        self.publisher = Publisher(settings)
        intake = Hl7Intake(self.publisher, ResendGuard(redis, settings.dedup_ttl_seconds), codes,
                           default_tz=ZoneInfo(settings.hl7_default_timezone), future_tolerance=settings.future_tolerance)
        self.mllp = MllpServer(intake, settings.bind_host, settings.mllp_port,
                               settings.max_message_bytes, settings.mllp_idle_timeout_seconds)
        identity = PatientIdentity(settings.fhir_patient_identity, dict(settings.fhir_identifier_systems))
        app.add_routes(FhirIntake(self.publisher, codes, identity=identity,
                                  future_tolerance=settings.future_tolerance).routes())
        readiness.add("kafka", self._kafka_ready)
        readiness.add("redis", redis.ping)
        readiness.add("mllp", self._mllp_ready)

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.publisher.start)
        await self.mllp.start()

    async def stop(self) -> None:
        await self.mllp.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.publisher.close)

    async def _kafka_ready(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, self.publisher.connected)

    async def _mllp_ready(self) -> bool:
        return self.mllp.serving()
