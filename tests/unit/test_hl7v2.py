from datetime import datetime

import hl7
import pytest

from neutrowatch.domain.codes import CodeMap
from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.hl7v2 import build_ack, parse_hl7, read_header, split_messages
from samples import (GLUCOSE_ORU, LAB_ORU_1, LAB_ORU_2, LAB_ORU_CODES, NIST_CBC, ORU_CORRECTED,
                     ORU_PRELIMINARY, ORU_TEMPERATURE_F, RAS_IVIG, SIMHOSPITAL, SIMHOSPITAL_CODES,
                     hl7_bytes, hl7_text, replace_segment)


def rejected(text, codes=CodeMap()):
    with pytest.raises(InputRejected) as info:
        parse_hl7(text, codes)
    return info.value.rejection


def test_nist_cbc_gives_one_direct_anc():
    result = parse_hl7(hl7_bytes(NIST_CBC), CodeMap())
    assert result.patient_id == "PATID1234"
    [anc] = result.events
    assert (anc.analyte, anc.value, anc.unit, anc.provenance, anc.status) == ("anc", 58000, "cells/uL", "direct", "F")
    assert (anc.patient_id, anc.assigning_authority) == ("PATID1234", "NIST MPI")
    assert anc.collected_at == datetime.fromisoformat("2011-01-03T14:34:28-08:00")
    assert anc.collected_at.isoformat() == "2011-01-03T14:34:28-08:00"
    assert (anc.original_value, anc.original_unit, anc.code.code) == ("58", "10*3/uL", "26499-4")
    assert anc.source.sending_application == "NIST Test Lab APP"
    assert anc.source.message_id == "NIST-LRI-NG-002.00"
    assert anc.birth_date == "1961-06-15"


def test_lab_oru_2_derives_anc_from_wbc_and_differential_in_two_obr_groups():
    [anc] = parse_hl7(hl7_bytes(LAB_ORU_2), LAB_ORU_CODES).events
    assert (anc.value, anc.provenance, anc.status, anc.specimen_id) == (5904, "derived", "F", "SpecimenID")
    assert sorted((c.role, c.code, c.value, c.unit) for c in anc.components) == [
        ("neutrophils_percent", "23761-0", 72, "%"), ("wbc", "11156-7", 8.2, "giga.l-1")]


def test_lab_oru_1_pending_wbc_gives_nothing():
    assert parse_hl7(hl7_bytes(LAB_ORU_1), LAB_ORU_CODES).events == ()


@pytest.mark.parametrize("name,value", zip(SIMHOSPITAL, [5740, 6470, 5710, 2430, 2040]))
def test_simhospital_anc_through_the_local_code_map(name, value):
    [anc] = parse_hl7(hl7_bytes(name), SIMHOSPITAL_CODES).events
    assert (anc.value, anc.provenance, anc.assigning_authority) == (value, "direct", "SIMULATOR MRN")
    assert anc.location.ward == "OtherWard"


@pytest.mark.parametrize("name", SIMHOSPITAL)
def test_simhospital_gives_nothing_without_the_map(name):
    assert parse_hl7(hl7_bytes(name), CodeMap()).events == ()


def test_simhospital_fbc_2_location_and_birth_date():
    [anc] = parse_hl7(hl7_bytes(SIMHOSPITAL[1]), SIMHOSPITAL_CODES).events
    assert anc.location.facility == "Simulated Hospital" and anc.location.service == "SUR"
    assert anc.birth_date == "1942-09-14"


def test_glucose_oru_gives_no_events():
    assert parse_hl7(hl7_bytes(GLUCOSE_ORU)).events == ()


def test_corrected_result_shares_the_observation_id_of_the_preliminary():
    [p] = parse_hl7(hl7_bytes(ORU_PRELIMINARY)).events
    [c] = parse_hl7(hl7_bytes(ORU_CORRECTED)).events
    assert (p.status, p.value, c.status, c.value) == ("P", 450, "C", 420)
    assert p.observation_id == c.observation_id and p.event_id != c.event_id


def test_temperature_in_fahrenheit_becomes_celsius():
    [t] = parse_hl7(hl7_bytes(ORU_TEMPERATURE_F)).events
    assert (t.analyte, t.unit, t.original_unit) == ("body_temperature", "Cel", "[degF]")
    assert t.value == pytest.approx(38.5)


def test_ras_o17_ivig_administration():
    result = parse_hl7(hl7_bytes(RAS_IVIG))
    [admin] = result.events
    assert (admin.drug_class, admin.status, admin.medication.code) == ("ivig", "completed", "J06BA02")
    assert (admin.dose.value, admin.dose.unit, admin.dose.mg_per_kg) == (1, "g/kg", 1000)
    assert admin.started_at.isoformat() == "2024-03-05T08:30:00+00:00"
    assert admin.ended_at.isoformat() == "2024-03-05T12:30:00+00:00"
    assert (admin.patient_id, admin.assigning_authority) == ("MRN0042", "GENHOSP")


def test_ras_deleted_and_refused_statuses():
    text = hl7_text(RAS_IVIG)
    assert parse_hl7(text.replace("||CP|A", "||CP|D")).events[0].status == "entered-in-error"
    assert parse_hl7(text.replace("||CP|A", "||RE|A")).events[0].status == "not-done"


@pytest.mark.parametrize("old,new,code,field", [
    ("|1|g/kg^gram per kilogram^UCUM|", "|abc|g/kg|", "bad_dose", "RXA-6"),
    ("|1|g/kg^gram per kilogram^UCUM|", "|1||", "bad_dose", "RXA-7"),
    ("J06BA02^Privigen", "^Privigen", "missing_administered_code", "RXA-5"),
])
def test_ras_rejections(old, new, code, field):
    r = rejected(hl7_text(RAS_IVIG).replace(old, new))
    assert (r.code, r.field) == (code, field)


def _without_wbc(text):
    return text.replace("|26464-8^Leukocytes", "|99999-9^Leukocytes")  # nothing to derive from


def _nist_obx18(new_value=None, new_unit=None):
    text = hl7_text(NIST_CBC)
    if new_value is not None:
        text = text.replace("||58|10*3/uL^", f"||{new_value}|10*3/uL^")
    if new_unit is not None:
        text = text.replace("||58|10*3/uL^thousand per microliter^UCUM|", f"||58|{new_unit}|")
    return text


@pytest.mark.parametrize("text,code,field", [
    (_nist_obx18(new_unit="mmol/L"), "unknown_unit", "OBX[18]-6"),
    (_nist_obx18(new_unit=""), "missing_unit", "OBX[18]-6"),
    (_nist_obx18(new_value="many"), "non_numeric_value", "OBX[18]-5"),
    (_nist_obx18(new_value="-1"), "implausible_value", "OBX[18]-5"),
    (_nist_obx18(new_value="250"), "implausible_value", "OBX[18]-5"),
])
def test_an_unreadable_direct_count_is_named_and_the_count_derived_from_the_rest(text, code, field):
    # the specimen's leukocytes (105600/uL) and neutrophils (55 %) still give its count
    result = parse_hl7(text)
    [anc] = result.events
    assert (anc.provenance, anc.value) == ("derived", 58080)
    [problem] = result.problems
    assert (problem.code, problem.field) == (code, field)
    assert "PATID1234" not in problem.reason


@pytest.mark.parametrize("text,code,field", [
    (_nist_obx18(new_unit="mmol/L"), "unknown_unit", "OBX[18]-6"),
    (_nist_obx18(new_value="many"), "non_numeric_value", "OBX[18]-5"),
])
def test_an_unreadable_count_with_nothing_else_usable_rejects_the_message(text, code, field):
    r = rejected(_without_wbc(text))
    assert (r.code, r.field) == (code, field)


def test_unknown_unit_reason_names_field_unit_and_code():
    r = rejected(_without_wbc(_nist_obx18(new_unit="mmol/L")))
    assert r.reason == "OBX[18]-6 unit 'mmol/L' is not a known unit for LOINC 26499-4 (neutrophils #/volume)"


def test_wrong_message_type():
    r = rejected(hl7_text(NIST_CBC).replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01"))
    assert (r.code, r.field) == ("unsupported_message_type", "MSH-9")


def test_no_pid_3():
    text = replace_segment(hl7_text(NIST_CBC), "PID|", "PID|1||^^^NIST MPI^MR||||19610615|M")
    r = rejected(text)
    assert (r.code, r.field) == ("missing_patient_id", "PID-3")


@pytest.mark.parametrize("data", [b"\x00\x01binary", b"hello world", "PID|1||X", ""])
def test_not_hl7(data):
    assert rejected(data).code == "not_hl7"


def test_missing_collection_time():
    text = hl7_text(ORU_PRELIMINARY).replace("|||20240310073000+0000||||", "|||||||").replace(
        "|||P|||20240310073000+0000", "|||P|||")
    r = rejected(text)
    assert (r.code, r.field) == ("missing_collection_time", "OBR-7")


def test_bad_timestamp():
    r = rejected(hl7_text(ORU_PRELIMINARY).replace("|||P|||20240310073000+0000", "|||P|||2024-03-10"))
    assert (r.code, r.field) == ("bad_timestamp", "OBX[1]-14")


def test_unknown_result_status():
    r = rejected(hl7_text(ORU_PRELIMINARY).replace("|L|||P|||", "|L|||Z|||"))
    assert (r.code, r.field) == ("unknown_result_status", "OBX[1]-11")


def test_segment_endings_and_bom_do_not_matter():
    text = hl7_text(NIST_CBC)
    for variant in (text.replace("\r", "\n"), text.replace("\r", "\r\n"), "\ufeff" + text):
        assert parse_hl7(variant).events[0].value == 58000


def test_sn_values_and_v23_oru_without_trigger():
    text = hl7_text(ORU_PRELIMINARY).replace("ORU^R01^ORU_R01", "ORU").replace("|2.5.1", "|2.3").replace(
        "|NM|751-8", "|SN|751-8").replace("||0.45|", "||<^0.45|")
    [anc] = parse_hl7(text).events
    assert (anc.value, anc.original_value) == (450, "<0.45")


def test_read_header():
    h = read_header(hl7_text(NIST_CBC))
    assert (h.sending_application, h.sending_facility, h.receiving_facility) == (
        "NIST Test Lab APP", "NIST Lab Facility", "NIST EHR Facility")
    assert (h.message_id, h.message_type, h.version, h.processing_id) == ("NIST-LRI-NG-002.00", "ORU^R01", "2.5.1", "T")
    with pytest.raises(InputRejected) as info:
        read_header("GARBAGE")
    assert info.value.rejection.code == "not_hl7"


def test_split_messages_mllp_and_plain():
    a, b = hl7_text(NIST_CBC), hl7_text(SIMHOSPITAL[0])
    framed = ("\x0b" + a + "\x1c\r" + "\x0b" + b + "\x1c\r").encode()
    assert [m[:20] for m in split_messages(framed)] == [a[:20], b[:20]]
    plain = (a.replace("\r", "\n") + "\n" + b).encode("utf-8")
    messages = split_messages(b"\xef\xbb\xbf" + plain)
    assert len(messages) == 2 and all(m.startswith("MSH|") for m in messages)
    assert parse_hl7(messages[0]).events[0].value == 58000


def test_ack_for_a_rejection_parses_back():
    text = _without_wbc(_nist_obx18(new_unit="mmol/L"))
    r = rejected(text)
    ack = build_ack(read_header(text), "AE", r, "ACK123", "20240101120000+0000")
    message = hl7.parse(ack)
    assert str(message.segment("MSH")[9]) == "ACK^R01^ACK"
    assert str(message.segment("MSH")[3]) == ""  # no receiving application in the original
    assert str(message.segment("MSH")[4]) == "NIST EHR Facility"
    assert str(message.segment("MSA")[1]) == "AE"
    assert str(message.segment("MSA")[2]) == "NIST-LRI-NG-002.00"
    err = message.segment("ERR")
    assert str(err[2]) == "OBX^18^6"
    assert message.extract_field("ERR", 1, 3, 1, 1) == "103"
    assert str(err[4]) == "E"
    assert message.unescape(str(err[8])) == r.reason


def test_ack_escapes_delimiters_and_accepts_without_header():
    from neutrowatch.domain.events import Rejection
    ack = build_ack(None, "AR", Rejection("not_hl7", "bad | ^ & ~ \\ input", None), "C1", "20240101")
    message = hl7.parse(ack)
    assert str(message.segment("MSH")[12]) == "2.5.1"
    assert message.unescape(str(message.segment("ERR")[8])) == "bad | ^ & ~ \\ input"


def test_ack_accept():
    h = read_header(hl7_text(SIMHOSPITAL[0]))
    message = hl7.parse(build_ack(h, "AA", None, "C2", "20240101"))
    assert [str(s[0]) for s in message] == ["MSH", "MSA"]
    assert str(message.segment("MSH")[12]) == "2.3"
    assert str(message.segment("MSA")[2]) == "13"


def test_an_accepting_ack_names_each_result_not_kept_as_a_warning():
    text = _nist_obx18(new_value="many")
    result = parse_hl7(text)
    ack = hl7.parse(build_ack(read_header(text), "AA", None, "ACK124", "20240101120000+0000",
                              result.problems))
    assert str(ack.segment("MSA")[1]) == "AA"
    assert str(ack.segment("MSA")[3]).startswith("accepted; 1 result(s) could not be used")
    err = ack.segment("ERR")
    assert (str(err[2]), str(err[4])) == ("OBX^18^5", "W")
