"""One typed settings object per process: environment variables with the NEUTROWATCH_ prefix.

Every field shows in `neutrowatch <command> --help` (neutrowatch.cli builds the options from
this model), so a field's description is its documentation.
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEUTROWATCH_", frozen=True, extra="ignore")

    # Kafka
    kafka_bootstrap: str | None = Field(
        None, description="Kafka bootstrap servers (host:port,...). Unset: `up` starts an embedded Tansu broker.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="Kafka SASL mechanism.")
    kafka_sasl_username: str | None = Field(None, description="Kafka SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="Kafka SASL password (never logged).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle for Kafka TLS.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate for Kafka mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client key for Kafka mutual TLS.")
    kafka_partitions: int = Field(6, ge=1, description="Partitions of every NeutroWatch topic (co-keyed topics share it).")
    kafka_replication_factor: int = Field(1, ge=1, description="Replication factor of created topics.")
    kafka_port: int = Field(0, ge=0, description="Port of the embedded broker (0: a free port).")
    produce_timeout_seconds: float = Field(
        10.0, gt=0, description="How long ingest waits for Kafka's ack before answering AR / 503.")

    # Redis
    redis_url: str | None = Field(
        None, description="Redis URL (redis:// or rediss://). Unset: `up` starts its own redis-server.")
    redis_username: str | None = Field(None, description="Redis ACL user name.")
    redis_password: SecretStr | None = Field(None, description="Redis ACL password (never logged).")
    redis_ssl_ca_certs: Path | None = Field(None, description="CA bundle for Redis TLS (rediss://).")
    redis_port: int = Field(0, ge=0, description="Port of the embedded redis-server (0: a free port).")

    # Ingest
    bind_host: str = Field("127.0.0.1", description="Address the MLLP and HTTP listeners bind to.")
    mllp_port: int = Field(2575, ge=0, description="HL7 v2 MLLP listener port.")
    http_port: int = Field(8080, ge=0, description="HTTP port (FHIR ingest, health, metrics, API).")
    max_message_bytes: int = Field(1024 * 1024, ge=1024, description="Largest accepted HL7 message or HTTP body.")
    mllp_idle_timeout_seconds: float = Field(
        300.0, gt=0, description="An MLLP connection silent this long (or stuck mid-frame) is closed.")
    dedup_ttl_seconds: int = Field(
        7 * 24 * 3600, ge=60, description="How long a resent HL7 message (same facility + MSH-10) is recognised.")
    local_codes_file: Path | None = Field(
        None, description="YAML map of local lab codes to ANC roles (see config/local-codes.example.yaml).")
    hl7_default_timezone: str = Field(
        "UTC", description="IANA time zone (e.g. Europe/London) of HL7 v2 timestamps that carry no UTC "
        "offset when MSH-7 states none either; its daylight-saving rules apply. An offset in the field, "
        "else MSH-7's, wins.")
    fhir_patient_identity: Literal["reference", "identifier"] = Field(
        "reference", description="How a FHIR subject becomes a patient key: `reference` keys by the "
        "Patient's logical id (Patient/123 -> 123; subject.identifier only when the subject has no "
        "reference); `identifier` keys by subject.identifier, else the identifier of the referenced "
        "Patient in the Bundle or in contained (type MR first), and refuses (422) a subject without "
        "one, so that FHIR and HL7 v2 (PID-3 authority|MRN) events of one person share a key.")
    fhir_identifier_systems: dict[str, str] = Field(
        {}, description="JSON object mapping FHIR identifier systems to HL7 v2 assigning authorities, "
        "e.g. {\"http://hospital.example/mrn\": \"HOSP\"}: such an identifier is keyed HOSP|value, as "
        "PID-3 with authority HOSP is. Unmapped, with `fhir_patient_identity` identifier, "
        "urn:oid:1.2.3 is keyed by 1.2.3 (as PID-3 with only the OID), any other system as it is.")

    future_tolerance_seconds: float = Field(
        3600.0, ge=0, description="How far ahead of this host's clock a result's collection time or an "
        "administration's start may be. Later ones are refused (HL7 AE, FHIR 422, monitor dead letter "
        "future_time): a mistyped year would otherwise push the patient's real counts out of the "
        "engine's history. So are report times and birth dates in the future.")

    redis_cluster: bool = Field(
        False, description="Connect to a Redis Cluster (monitor keys are hash-tagged per patient).")

    # Monitor (streaming detection)
    monitor_http_port: int = Field(
        0, ge=0, description="Port of the monitor worker's own /healthz, /readyz and /metrics (0: a free port).")
    monitor_web_port: int = Field(
        0, ge=0, description="Port of the faust worker's web server (0: disabled).")
    monitor_batch_size: int = Field(
        500, ge=1, description="Most events the monitor commits to Redis in one round trip.")
    monitor_batch_seconds: float = Field(
        0.01, gt=0, description="Longest the monitor waits to fill a batch before processing it.")
    monitor_rebalance_timeout_seconds: float = Field(
        5.0, gt=0, description="Consumer-group rebalance timeout of the monitor workers.")
    monitor_session_timeout_seconds: float = Field(
        6.0, gt=0, description="Consumer-group session timeout of the monitor workers.")
    monitor_heartbeat_seconds: float = Field(
        1.0, gt=0, description="Consumer-group heartbeat interval of the monitor workers.")
    monitor_fetch_max_wait_ms: int = Field(
        50, ge=1, le=1500, description="Longest a monitor fetch waits at the broker for data (faust fixes "
        "1500 ms; brokers that do not answer early on new data, like Tansu, add that much latency).")
    monitor_stall_seconds: float = Field(
        30.0, gt=0, description="Not ready when events wait on the monitor's partitions and none was "
        "processed for this long (a stalled consumer).")
    monitor_retry_max_seconds: float = Field(
        5.0, gt=0, description="Longest back-off between the monitor's retries while Redis or Kafka is away.")
    up_monitor: bool = Field(
        True, description="`up` runs a monitor worker as a supervised child process; false (--no-up-monitor) "
        "when monitor workers run as their own services (`neutrowatch monitor`, docker-compose).")
    monitor_restart_max_seconds: float = Field(
        10.0, gt=0, description="`up`: longest back-off before restarting a monitor worker that died.")
    detection_config_file: Path | None = Field(
        None, description="YAML/JSON detection settings (thresholds, profiles, watch list, patient overrides).")
    api_page_size_max: int = Field(500, ge=1, description="Largest page GET /alerts returns.")

    # Notify (alert delivery)
    notify_routing_file: Path | None = Field(
        None, description="YAML routing tree of `notify` (receivers, routes, escalation; see config/routing.example.yaml).")
    notify_public_url: str = Field(
        "http://127.0.0.1:8080", description="Base URL clinicians reach the API at (alert and one-click ack links).")
    notify_ack_secret: SecretStr | None = Field(
        None, description="HMAC key signing one-click ack links (never logged; unset: a random key per process).")
    notify_api_token: SecretStr | None = Field(
        None, description="Bearer token for POST /alerts/{id}/ack and /silences (never logged; unset: those routes answer 503).")
    notify_ack_link_ttl_seconds: int = Field(7 * 24 * 3600, ge=60, description="How long a one-click ack link stays valid.")
    notify_smtp_host: str = Field("127.0.0.1", description="SMTP server of email receivers.")
    notify_smtp_port: int = Field(25, ge=1, description="SMTP port of email receivers.")
    notify_smtp_starttls: bool = Field(False, description="Use STARTTLS with the SMTP server.")
    notify_smtp_username: str | None = Field(None, description="SMTP user name.")
    notify_smtp_password: SecretStr | None = Field(None, description="SMTP password (never logged).")
    notify_smtp_from: str = Field("neutrowatch@localhost", description="From address of notification emails.")
    notify_send_timeout_seconds: float = Field(10.0, gt=0, description="Longest one delivery attempt may take.")
    notify_retry_initial_seconds: float = Field(2.0, gt=0, description="First back-off after a recoverable delivery failure.")
    notify_retry_max_seconds: float = Field(300.0, gt=0, description="Longest back-off between delivery retries.")
    notify_retry_give_up_seconds: float = Field(
        3600.0, gt=0, description="A recoverable failure retried this long is given up (the fallback receiver is told).")
    notify_group: str = Field("neutrowatch-notify", description="Consumer group of `notify` on the alerts topic.")
    notify_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new `notify` consumer group starts on the alerts topic.")
    notify_redis_prefix: str = Field("nw:notify", description="Prefix of every Redis key `notify` writes.")
    notify_tick_seconds: float = Field(0.2, gt=0, description="How often `notify` looks for due deliveries and escalations.")

    # Observability
    log_level: str = Field("INFO", description="Log level.")

    @field_validator("detection_config_file")
    @classmethod
    def _detection_config_loads(cls, path: Path | None) -> Path | None:
        """A file that cannot be read, or holds a bad setting, stops the command at start with
        the setting and the reason (not a traceback from inside a running worker)."""
        if path is not None:
            from neutrowatch.analyze import load_config
            try:
                load_config(path)
            except OSError as exc:
                raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
        return path

    @field_validator("hl7_default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"{value!r} is not an IANA time zone name (e.g. Europe/London, UTC)") from None
        return value

    @field_validator("fhir_identifier_systems", mode="before")
    @classmethod
    def _identifier_systems(cls, value: object) -> dict[str, str]:
        return identifier_systems(value)

    def kafka_client_config(self) -> dict:
        """Connection settings shared by kafka-python producers, consumers and admin clients."""
        cfg: dict = {"bootstrap_servers": self.kafka_bootstrap,
                     "security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            cfg.update(sasl_mechanism=self.kafka_sasl_mechanism,
                       sasl_plain_username=self.kafka_sasl_username,
                       sasl_plain_password=_secret(self.kafka_sasl_password))
        for key in ("cafile", "certfile", "keyfile"):
            value = getattr(self, f"kafka_ssl_{key}")
            if value:
                cfg[f"ssl_{key}"] = str(value)
        return cfg

    @property
    def future_tolerance(self) -> timedelta:
        return timedelta(seconds=self.future_tolerance_seconds)

    def aiokafka_client_config(self) -> dict:
        """The same connection settings for aiokafka clients (TLS as an ssl_context)."""
        cfg = {k: v for k, v in self.kafka_client_config().items() if not k.startswith("ssl_")}
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context
            cfg["ssl_context"] = create_ssl_context(
                cafile=_path(self.kafka_ssl_cafile), certfile=_path(self.kafka_ssl_certfile),
                keyfile=_path(self.kafka_ssl_keyfile))
        return cfg

    def redis_client_kwargs(self) -> dict:
        kwargs: dict = {}
        if self.redis_username:
            kwargs["username"] = self.redis_username
        if self.redis_password:
            kwargs["password"] = _secret(self.redis_password)
        if self.redis_ssl_ca_certs:
            kwargs["ssl_ca_certs"] = str(self.redis_ssl_ca_certs)
        return kwargs


def identifier_systems(value: object) -> dict[str, str]:
    """The ``fhir_identifier_systems`` mapping from its JSON text (the command line; the
    environment is decoded by pydantic-settings) or a mapping; ValueError says what is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise ValueError('not JSON; give an object such as {"http://hospital.example/mrn": '
                             '"HOSP"}') from None
    if not isinstance(value, dict):
        raise ValueError('not a JSON object; give one such as {"http://hospital.example/mrn": "HOSP"}')
    for system, authority in value.items():
        if not isinstance(system, str) or not system.strip():
            raise ValueError("an identifier system is empty")
        if not isinstance(authority, str) or not authority.strip() or "|" in authority \
                or authority != authority.strip():
            raise ValueError(f"the authority of {system[:100]!r} must be a non-empty name without "
                             f"'|' or surrounding spaces (as in PID-3.4)")
    return value


def _path(value: Path | None) -> str | None:
    return str(value) if value else None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value else None
