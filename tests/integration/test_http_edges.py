"""Requests a client gets wrong get a 4xx naming the problem from a running `neutrowatch up`, never a
500 (each answered 500 before): JSON nested a thousand deep, an acknowledgement link whose MAC is
not ASCII, an Authorization header with non-ASCII bytes."""
from __future__ import annotations

import pytest

from processes import http_json, start_up

pytestmark = pytest.mark.integration


ROUTING = """
receivers:
  ward:
    type: webhook
    url: http://127.0.0.1:9/hook
    secret_env: EDGE_WEBHOOK_SECRET
route:
  receiver: ward
"""


@pytest.fixture(scope="module")
def base_url(kafka_bootstrap, redis_url, tmp_path_factory):
    routing = tmp_path_factory.mktemp("edges") / "routing.yaml"
    routing.write_text(ROUTING, encoding="utf-8")
    service, _, http_port = start_up(kafka_bootstrap, redis_url, ["--notify-routing-file", str(routing)],
                                     env={"NEUTROWATCH_NOTIFY_API_TOKEN": "edge-token",
                                          "EDGE_WEBHOOK_SECRET": "edge-secret"})
    yield f"http://127.0.0.1:{http_port}"
    service.stop()


def test_json_nested_too_deeply_is_a_400(base_url):
    body = b"[" * 100000 + b"]" * 100000
    status, outcome = http_json(f"{base_url}/fhir/Observation", body, {"Content-Type": "application/fhir+json"})
    assert status == 400
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "not_json"


def test_an_ack_link_with_a_non_ascii_mac_is_a_403(base_url):
    status, body = http_json(f"{base_url}/ack?token=a.%C3%A9")
    assert status == 403 and "not valid (bad_signature)" in body


def test_a_non_ascii_authorization_header_is_a_401(base_url):
    status, body = http_json(f"{base_url}/alerts/0123/ack", b'{"by": "x"}',
                             {"Authorization": "Bearer \u00e9t\u00e9", "Content-Type": "application/json"},
                             method="POST")
    assert status == 401 and body == {"error": "bearer token required"}
