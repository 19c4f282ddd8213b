"""The whole pipeline as `neutrowatch up` runs it with a routing file: lab results in (HL7 over
MLLP, canonical records on the input topics), explained alerts delivered to a real SMTP server
and a real signature-checking webhook."""
from __future__ import annotations

import uuid

import pytest
from hl7.client import MLLPClient

from kafka_reader import read_records
from monitor_helpers import anc_record, fresh, new_tag, produce
from notify_helpers import WEBHOOK_SECRET, Mailbox, Webhook, wait_until
from processes import start_up

pytestmark = pytest.mark.integration

ROUTING = """
receivers:
  oncall-email: {{type: email, to: [haem-oncall@hospital.example]}}
  ward-board: {{type: webhook, url: "http://127.0.0.1:{hook}/hook", secret_env: NW_TEST_WEBHOOK_SECRET}}
route:
  receiver: ward-board
  routes:
    - match: {{severity: critical}}
      receiver: oncall-email
      continue: true
    - match: {{severity: critical}}
      receiver: ward-board
"""


@pytest.fixture(scope="module")
def pipeline(kafka_bootstrap, redis_url, tmp_path_factory):
    mailbox, hook = Mailbox().start(), Webhook().start()
    routing = tmp_path_factory.mktemp("pipeline") / "routing.yaml"
    routing.write_text(ROUTING.format(hook=hook.port))
    name = uuid.uuid4().hex[:8]
    service, mllp_port, _ = start_up(
        kafka_bootstrap, redis_url,
        ["--notify-routing-file", str(routing), "--notify-smtp-port", str(mailbox.port),
         "--notify-group", f"notify-{name}", "--notify-redis-prefix", f"nwtest:{name}",
         "--notify-offset-reset", "latest", "--notify-tick-seconds", "0.1"],
        env={"NW_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET, "NEUTROWATCH_NOTIFY_ACK_SECRET": "ack-" + name})
    yield mllp_port, mailbox, hook, service
    took = service.stop()
    mailbox.stop()
    hook.stop()
    assert took < 10


def delivered(hook: Webhook, patient_key: str, kind: str) -> list[dict]:
    return [p for p in hook.received if p["alert"]["patient_key"] == patient_key and p["alert"]["kind"] == kind]


def test_a_count_sent_over_mllp_pages_on_call_within_seconds(pipeline):
    mllp_port, mailbox, hook, service = pipeline
    patient = "PIPE" + uuid.uuid4().hex[:8]
    with MLLPClient("127.0.0.1", mllp_port) as client:
        for i, (when, value) in enumerate([("20260301080000", "2.6"), ("20260302080000", "0.3")]):
            client.send_message(
                f"MSH|^~\\&|LAB|TESTLAB|NW|NW|{when}||ORU^R01|{patient}-{i}|P|2.5.1\r"
                f"PID|1||{patient}^^^TESTMPI^MR\rOBR|1|O{i}|F{patient}{i}|57021-8^CBC^LN|||{when}\r"
                f"OBX|1|NM|751-8^ANC^LN||{value}|10*3/uL|||||F\r")
    key = f"TESTMPI|{patient}"
    assert wait_until(lambda: delivered(hook, key, "severe_neutropenia"), 30), service.output()[-3000:]
    [page] = delivered(hook, key, "severe_neutropenia")
    assert page["alert"]["severity"] == "critical" and page["alert"]["anc_cells_per_ul"] == 300
    assert wait_until(lambda: mailbox.about(page["alert"]["alert_id"], "haem-oncall@"), 20)
    assert hook.bad_signatures == 0


def test_the_ivig_case_reaches_the_ward_board_with_its_pattern(pipeline, kafka_bootstrap):
    _, mailbox, hook, service = pipeline
    records = fresh("ivig_case", new_tag())
    key = records[0]["patient_key"]
    produce(kafka_bootstrap, records)
    assert wait_until(lambda: delivered(hook, key, "post_ivig_neutropenia_pattern"), 40), service.output()[-3000:]
    [page] = delivered(hook, key, "post_ivig_neutropenia_pattern")
    evidence = page["alert"]["evidence"]
    assert evidence["rule"] == "post_ivig_neutropenia_pattern" and len(evidence["cycles"]) >= 2
    severe = wait_until(lambda: delivered(hook, key, "severe_neutropenia"), 20)
    assert severe, "the IVIG dips below 500 are critical and reach the ward board"
    assert wait_until(lambda: all(mailbox.about(p["alert"]["alert_id"], "haem-oncall@") for p in severe), 20)


def test_a_severe_count_corrected_away_and_back_pages_again(pipeline, kafka_bootstrap):
    """The lab corrects a 300 to 3000 (the severe alert is withdrawn), then back to 300: the severe
    alert holds again and on call is paged again. Under the id it first had, every consumer took
    it for the alert already seen, so the last word on call had was "withdrawn"."""
    _, mailbox, hook, service = pipeline
    patient = new_tag()
    key = f"TESTMPI|{patient}"

    def version(n: int, status: str, value: float) -> dict:
        return anc_record(patient, "a", str(n), "2026-03-07T08:00:00+00:00", value, status)

    produce(kafka_bootstrap, [version(1, "F", 300), version(2, "C", 3000), version(3, "C", 300)])
    on_topic = read_records(kafka_bootstrap, "neutrowatch.alerts.v1", lambda r: r["patient_key"] == key,
                            expect=3, timeout=30)
    assert [a["kind"] for a in on_topic] == ["severe_neutropenia", "alert_retracted", "severe_neutropenia"]
    first, withdrawal, again = on_topic
    assert withdrawal["retracts_alert_id"] == first["alert_id"] != again["alert_id"]
    assert wait_until(lambda: [p for p in delivered(hook, key, "severe_neutropenia")
                               if p["alert"]["alert_id"] == again["alert_id"]], 30), service.output()[-3000:]
    assert wait_until(lambda: mailbox.about(again["alert_id"], "haem-oncall@"), 20)
