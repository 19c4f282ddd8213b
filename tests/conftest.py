"""Real servers for integration tests, chosen in this order:
1. an address in the environment (NEUTROWATCH_TEST_KAFKA_BOOTSTRAP, NEUTROWATCH_TEST_REDIS_URL);
2. testcontainers, when a Docker engine answers;
3. a locally started Tansu broker / redis-server (always stopped at the end of the session).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from neutrowatch.platform.embedded import EmbeddedKafka, EmbeddedRedis  # noqa: E402


def docker_answers() -> bool:
    try:
        import docker
        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap():
    given = os.environ.get("NEUTROWATCH_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
    elif docker_answers():
        from testcontainers.kafka import KafkaContainer
        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        with EmbeddedKafka() as kafka:
            yield kafka.bootstrap


@pytest.fixture(scope="session")
def redis_url():
    given = os.environ.get("NEUTROWATCH_TEST_REDIS_URL")
    if given:
        yield given
    elif docker_answers():
        from testcontainers.redis import RedisContainer
        with RedisContainer() as redis:
            yield f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"
    else:
        with EmbeddedRedis() as redis:
            yield redis.url
