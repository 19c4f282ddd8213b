"""HL7 v2 over a real MLLP socket into a running `neutrowatch up`, on a real broker and Redis:
what the sender gets back, and what lands on the topics."""
from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient

from kafka_reader import read_records
from processes import start_up

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parents[1] / "fixtures" / "hl7"
LAB = "neutrowatch.lab-results.v1"
MEDS = "neutrowatch.medication-administrations.v1"
DEAD = "neutrowatch.dead-letter.v1"
MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def stack(kafka_bootstrap, redis_url):
    service, mllp_port, http_port = start_up(
        kafka_bootstrap, redis_url,
        ["--max-message-bytes", str(MAX_BYTES), "--mllp-idle-timeout-seconds", "3"])
    yield mllp_port, http_port
    service.stop()


def nist_cbc(control_id: str) -> str:
    text = (FIXTURES / "fhirconverter__LRI_2.0-NG_CBC_Typ_Message.hl7").read_text(encoding="utf-8-sig")
    return text.replace("NIST-LRI-NG-002.00", control_id)


def oru(control_id: str, patient: str, obx: str, pid3: str | None = None, msg_type: str = "ORU^R01") -> str:
    pid3 = f"{patient}^^^TESTMPI^MR" if pid3 is None else pid3
    return "\r".join([
        f"MSH|^~\\&|LAB|TESTLAB|NW|NW|20260101120000+0000||{msg_type}|{control_id}|P|2.5.1",
        f"PID|1||{pid3}||Doe^Jane",
        f"OBR|1|ORD1|FILL-{control_id}|57021-8^CBC^LN|||20260101080000+0000",
        obx,
    ]) + "\r"


def send(port: int, message: str) -> hl7.Message:
    with MLLPClient("127.0.0.1", port) as client:
        return hl7.parse(client.send_message(message).decode("utf-8"))


def ack_of(ack: hl7.Message) -> tuple[str, str, str]:
    msa = ack.segment("MSA")
    return str(msa[1]), str(msa[2]), str(msa[3])


def new_id() -> str:
    return "T" + uuid.uuid4().hex[:18]


def test_nist_cbc_is_acknowledged_and_its_anc_is_on_kafka(stack, kafka_bootstrap):
    mllp_port, _ = stack
    control_id = new_id()
    code, acked_id, _ = ack_of(send(mllp_port, nist_cbc(control_id)))
    assert (code, acked_id) == ("AA", control_id)
    records = read_records(kafka_bootstrap, LAB, lambda r: r["source"].get("message_id") == control_id, expect=1)
    assert len(records) == 1
    anc = records[0]
    assert anc["patient_id"] == "PATID1234" and anc["assigning_authority"] == "NIST MPI"
    assert anc["_key"] == anc["patient_key"] == "NIST MPI|PATID1234"
    assert (anc["analyte"], anc["value"], anc["unit"], anc["provenance"]) == ("anc", 58000, "cells/uL", "direct")
    assert anc["collected_at"] == "2011-01-03T14:34:28-08:00" and anc["status"] == "F"


def test_a_resent_message_produces_no_second_event(stack, kafka_bootstrap):
    mllp_port, _ = stack
    control_id = new_id()
    message = oru(control_id, "RESEND1", "OBX|1|NM|751-8^Neutrophils^LN||0.4|10*3/uL|||||F")
    assert ack_of(send(mllp_port, message))[0] == "AA"
    assert ack_of(send(mllp_port, message))[0] == "AA"
    records = read_records(kafka_bootstrap, LAB, lambda r: r["source"].get("message_id") == control_id, timeout=3)
    assert [r["value"] for r in records] == [400]


def test_a_reused_control_id_with_other_content_is_a_new_message(stack, kafka_bootstrap):
    # a sender whose counter reset sends another patient's result under an id seen before
    mllp_port, _ = stack
    control_id = new_id()
    first = oru(control_id, "REUSE1", "OBX|1|NM|751-8^Neutrophils^LN||3.0|10*3/uL|||||F")
    second = oru(control_id, "REUSE2", "OBX|1|NM|751-8^Neutrophils^LN||0.05|10*3/uL|||||F")
    for message in (first, second, second):  # the second twice: the same bytes again are a resend
        assert ack_of(send(mllp_port, message))[0] == "AA"
    records = read_records(kafka_bootstrap, LAB, lambda r: r["source"].get("message_id") == control_id, expect=2)
    assert sorted((r["patient_id"], r["value"]) for r in records) == [("REUSE1", 3000), ("REUSE2", 50)]


def test_a_cbc_with_an_unreadable_percent_keeps_its_direct_count_and_warns(stack, kafka_bootstrap):
    mllp_port, _ = stack
    control_id = new_id()
    message = oru(control_id, "MASKED1", "OBX|1|NM|770-8^Neutrophils/100 leukocytes^LN||___|%|||||F")
    message += "OBX|2|NM|751-8^Neutrophils^LN||0.08|K/uL|||||F\r"
    ack = send(mllp_port, message)
    code, acked_id, text = ack_of(ack)
    assert (code, acked_id) == ("AA", control_id)
    assert text.startswith("accepted; 1 result(s) could not be used")
    err = ack.segment("ERR")
    assert (str(err[2]), str(err[4]), str(err[5])) == ("OBX^1^5", "W", "non_numeric_value")
    [anc] = read_records(kafka_bootstrap, LAB, lambda r: r["source"].get("message_id") == control_id, expect=1)
    assert (anc["value"], anc["provenance"]) == (80, "direct")
    [letter] = read_records(kafka_bootstrap, DEAD, lambda r: r["source"].get("message_id") == control_id, expect=1)
    assert (letter["reason_code"], letter["field"]) == ("non_numeric_value", "OBX[1]-5")


def test_ras_o17_ivig_administration_lands_on_its_topic(stack, kafka_bootstrap):
    mllp_port, _ = stack
    control_id = new_id()
    message = "\r".join([
        f"MSH|^~\\&|PHARM|TESTHOSP|NW|NW|20260101120000+0000||RAS^O17^RAS_O17|{control_id}|P|2.5.1",
        "PID|1||IVIG1^^^TESTMPI^MR||Doe^John",
        "ORC|RE|RX1|ADM-1",
        "RXA|0|1|20260105090000+0000|20260105130000+0000|J06BA02^Privigen^ATC|1|g/kg^g/kg^UCUM|||||||||||||CP|A",
    ]) + "\r"
    assert ack_of(send(mllp_port, message))[:2] == ("AA", control_id)
    records = read_records(kafka_bootstrap, MEDS, lambda r: r["source"].get("message_id") == control_id, expect=1)
    assert len(records) == 1
    admin = records[0]
    assert admin["drug_class"] == "ivig" and admin["medication"]["code"] == "J06BA02"
    assert admin["dose"]["mg_per_kg"] == 1000 and admin["started_at"].startswith("2026-01-05T09:00:00")


BAD_MESSAGES = {
    "wrong message type": (lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F", msg_type="ADT^A01"),
                           "unsupported_message_type", "MSH-9"),
    "no PID-3": (lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F", pid3=""),
                 "missing_patient_id", "PID-3"),
    "unknown unit": (lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||1.2|mmol/L|||||F"), "unknown_unit", "OBX"),
    "non-numeric value": (lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||lots|10*3/uL|||||F"),
                          "non_numeric_value", "OBX"),
    "negative ANC": (lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||-0.5|10*3/uL|||||F"), "implausible_value", "OBX"),
    "ANC over 200,000": (lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||250|10*3/uL|||||F"),
                         "implausible_value", "OBX"),
    "count sent as text (TX)": (lambda cid: oru(cid, "P1", "OBX|1|TX|751-8^ANC^LN||0.45|10*3/uL|||||F"),
                                "non_numeric_value", "OBX"),
    "message cut inside the count's OBX": (lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||"),
                                           "missing_value", "OBX"),
    "collected in 1800 (a placeholder date)": (
        lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F").replace(
            "|||20260101080000+0000", "|||18000101"), "implausible_time", "SPM-17/OBR-7/OBX-14"),
    "collected in 2062 (a mistyped year)": (
        lambda cid: oru(cid, "P1", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F").replace(
            "|||20260101080000+0000", "|||20620101080000+0000"), "future_time", "SPM-17/OBR-7/OBX-14"),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_unusable_message_gets_ae_with_reason_and_a_dead_letter(stack, kafka_bootstrap, case):
    build, reason_code, field = BAD_MESSAGES[case]
    mllp_port, _ = stack
    control_id = new_id()
    ack = send(mllp_port, build(control_id))
    code, acked_id, text = ack_of(ack)
    assert (code, acked_id) == ("AE", control_id)
    assert text, "MSA-3 must carry the reason"
    err = ack.segment("ERR")
    assert str(err[8]) == text or text in str(err)
    letters = read_records(kafka_bootstrap, DEAD, lambda r: r["source"].get("message_id") == control_id, expect=1)
    assert len(letters) == 1
    assert letters[0]["reason_code"] == reason_code and letters[0]["field"].startswith(field)
    assert control_id in letters[0]["raw"]
    assert read_records(kafka_bootstrap, LAB, lambda r: r["source"].get("message_id") == control_id, timeout=1) == []
    assert_still_serving(mllp_port)


def assert_still_serving(mllp_port: int) -> None:
    control_id = new_id()
    assert ack_of(send(mllp_port, oru(control_id, "ALIVE", "OBX|1|NM|751-8^ANC^LN||2.0|10*3/uL|||||F")))[0] == "AA"


def raw_exchange(port: int, payload: bytes, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        if not read:
            return b""
        data = b""
        while not data.endswith(b"\x1c\r"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def parse_ack(data: bytes) -> hl7.Message:
    assert data.startswith(b"\x0b") and data.endswith(b"\x1c\r"), data
    return hl7.parse(data[1:-2].decode())


def test_bytes_that_are_not_hl7_get_ae_not_hl7(stack, kafka_bootstrap):
    mllp_port, _ = stack
    marker = new_id()
    ack = parse_ack(raw_exchange(mllp_port, b"\x0bGET / HTTP/1.1 " + marker.encode() + b"\x1c\r"))
    code, _, text = ack_of(ack)
    assert code == "AE" and "MSH" in text
    letters = read_records(kafka_bootstrap, DEAD, lambda r: marker in r["raw"], expect=1)
    assert letters[0]["reason_code"] == "not_hl7"
    assert_still_serving(mllp_port)


def test_frame_without_start_block_gets_ae_unframed(stack):
    mllp_port, _ = stack
    message = oru(new_id(), "P1", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F").encode()
    code, _, text = ack_of(parse_ack(raw_exchange(mllp_port, message + b"\x1c\r")))
    assert code == "AE" and "<VT>" in text
    assert_still_serving(mllp_port)


def test_truncated_frame_is_dead_lettered_and_the_server_keeps_serving(stack, kafka_bootstrap):
    mllp_port, _ = stack
    control_id = new_id()
    message = oru(control_id, "P1", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F").encode()
    raw_exchange(mllp_port, b"\x0b" + message[: len(message) // 2], read=False)
    letters = read_records(kafka_bootstrap, DEAD, lambda r: control_id in r["raw"], expect=1)
    assert letters[0]["reason_code"] == "truncated_frame"
    assert_still_serving(mllp_port)


def test_message_over_the_size_limit_gets_ae_and_the_next_message_is_served(stack):
    mllp_port, _ = stack
    big = oru(new_id(), "P1", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F") + ("NTE|1||" + "x" * 1000 + "\r") * 100
    with socket.create_connection(("127.0.0.1", mllp_port), timeout=10) as sock:
        sock.sendall(b"\x0b" + big.encode() + b"\x1c\r")
        data = sock.recv(65536)
        code, _, text = ack_of(parse_ack(data))
        assert code == "AE" and str(MAX_BYTES) in text
        control_id = new_id()  # same connection keeps working
        sock.sendall(b"\x0b" + oru(control_id, "P2", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F").encode() + b"\x1c\r")
        data = b""
        while not data.endswith(b"\x1c\r"):
            data += sock.recv(65536)
        assert ack_of(parse_ack(data))[:2] == ("AA", control_id)


def test_a_client_sending_one_byte_a_second_does_not_block_others(stack):
    mllp_port, _ = stack
    slow = socket.create_connection(("127.0.0.1", mllp_port), timeout=10)
    try:
        payload = b"\x0b" + oru(new_id(), "SLOW", "OBX|1|NM|751-8^ANC^LN||1.2|10*3/uL|||||F").encode()
        for byte in payload[:2]:
            slow.sendall(bytes([byte]))
            time.sleep(1)
        started = time.monotonic()
        assert_still_serving(mllp_port)
        assert time.monotonic() - started < 2.0
    finally:
        slow.close()


def test_a_sender_zone_setting_places_local_times(kafka_bootstrap, redis_url):
    # a feed whose timestamps carry no offset, MSH-7 none either, from a London hospital in summer
    service, mllp_port, _ = start_up(kafka_bootstrap, redis_url, ["--hl7-default-timezone", "Europe/London"])
    try:
        control_id, patient = new_id(), new_id()
        message = "\r".join([
            f"MSH|^~\\&|LAB|TESTLAB|NW|NW|20260701120000||ORU^R01|{control_id}|P|2.5.1",
            f"PID|1||{patient}^^^TESTMPI^MR||Doe^Jane",
            f"OBR|1|ORD1|FILL-{control_id}|57021-8^CBC^LN|||20260701083000",
            "OBX|1|NM|751-8^Neutrophils^LN||0.4|10*3/uL|||||F"]) + "\r"
        assert ack_of(send(mllp_port, message))[0] == "AA"
        [record] = read_records(kafka_bootstrap, LAB, lambda r: r["patient_id"] == patient, expect=1)
        assert record["collected_at"] == "2026-07-01T08:30:00+01:00"
    finally:
        service.stop()
