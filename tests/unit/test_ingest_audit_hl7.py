"""Ingest audit: HL7 v2 inputs a hospital feed really sends, and what the user must see.

Each test failed before the fix committed with it.
"""
from datetime import datetime, timedelta, timezone
import logging

import pytest

from neutrowatch.domain.codes import CodeMap
from neutrowatch.parsing.errors import InputRejected
from neutrowatch.parsing.hl7v2 import parse_hl7
from samples import LAB_ORU_2, LAB_ORU_CODES, hl7_bytes

MSH = "MSH|^~\\&|LAB|HOSP|NW|HOSP|20240101120000+0100||ORU^R01|MSG1|P|2.5.1"
PID = "PID|1||12345^^^HOSP^MR||Doe^Jane||19800101|F"
OBR = "OBR|1|ORD1|FIL1|57021-8^CBC^LN|||20240101083000+0100|||||||||||||||20240101100000+0100|||F"


def oru(*obx: str, msh: str = MSH, pid: str = PID, obr: str = OBR, extra: tuple[str, ...] = ()) -> str:
    return "\r".join([msh, pid, obr, *obx, *extra])


def anc_obx(value="0.4", unit="10*3/uL", status="F", when=""):
    return f"OBX|1|NM|751-8^Neutrophils [#/volume] in Blood^LN||{value}|{unit}||L|||{status}|||{when}"


def only_anc(text, codes=CodeMap()):
    [anc] = parse_hl7(text, codes).events
    assert anc.analyte == "anc"
    return anc


# ---------------------------------------------------------------- collection time


def test_lab_oru_2_is_dated_at_spm_17_collection_not_obx_14_analysis_time():
    # SPM-17 says the tube was drawn at 05:35; OBX-14 (08:30) is after SPM-18, the time the lab
    # received it: the analysis time. The result's time is the specimen collection time.
    anc = only_anc(hl7_bytes(LAB_ORU_2), LAB_ORU_CODES)
    assert anc.collected_at == datetime(2014, 10, 6, 5, 35, tzinfo=timezone(timedelta(hours=7)))


def test_spm_17_then_obr_7_then_obx_14():
    spm = "SPM|1|SP1||BLD|||||||P||||||20240101080000+0100|20240101090000+0100"
    late_obx = anc_obx(when="20240101110000+0100")
    tz = timezone(timedelta(hours=1))
    assert only_anc(oru(late_obx, extra=(spm,))).collected_at == datetime(2024, 1, 1, 8, 0, tzinfo=tz)
    assert only_anc(oru(late_obx)).collected_at == datetime(2024, 1, 1, 8, 30, tzinfo=tz)
    no_obr_time = "OBR|1|ORD1|FIL1|57021-8^CBC^LN"
    assert only_anc(oru(late_obx, obr=no_obr_time)).collected_at == datetime(2024, 1, 1, 11, 0, tzinfo=tz)


def test_collection_time_without_offset_takes_the_offset_of_msh_7():
    # HL7: a time without a zone is in the sender's local time, which MSH-7 states (+0100).
    obr = OBR.replace("20240101083000+0100", "20240101083000")
    anc = only_anc(oru(anc_obx(), obr=obr))
    assert anc.collected_at == datetime(2024, 1, 1, 7, 30, tzinfo=timezone.utc)
    assert anc.collected_at.utcoffset() == timedelta(hours=1)


def test_collection_time_without_any_offset_stays_utc():
    msh = MSH.replace("20240101120000+0100", "20240101120000")
    obr = OBR.replace("20240101083000+0100", "20240101083000")
    anc = only_anc(oru(anc_obx(), msh=msh, obr=obr))
    assert anc.collected_at == datetime(2024, 1, 1, 8, 30, tzinfo=timezone.utc)


# ---------------------------------------------------------------- patient identity


def test_assigning_authority_given_only_as_a_universal_id():
    # PID-3.4 is an HD: namespace & universal id & type. Many feeds send only the OID.
    pid = "PID|1||12345^^^&2.16.840.1.113883.19.5&ISO^MR||Doe^Jane||19800101|F"
    anc = only_anc(oru(anc_obx(), pid=pid))
    assert (anc.patient_id, anc.assigning_authority) == ("12345", "2.16.840.1.113883.19.5")
    assert anc.patient_key == "2.16.840.1.113883.19.5|12345"


def test_namespace_id_still_wins_over_the_universal_id():
    pid = "PID|1||PATID1234^^^NIST MPI&2.16.840.1.113883.3.72.5.30.2&ISO^MR"
    anc = only_anc(oru(anc_obx(), pid=pid))
    assert anc.assigning_authority == "NIST MPI"


def test_first_pid_3_repetition_with_an_identifier_is_used():
    pid = "PID|1||~12345^^^HOSP^MR||Doe^Jane"
    anc = only_anc(oru(anc_obx(), pid=pid))
    assert (anc.patient_id, anc.assigning_authority) == ("12345", "HOSP")


# ---------------------------------------------------------------- units


@pytest.mark.parametrize("unit,value", [("10^3/uL", 400), ("x10^9/L", 400), ("10^9/L", 400),
                                        ("X10^3/uL", 400)])
def test_unescaped_caret_in_a_power_of_ten_unit_is_read_as_one_unit(unit, value):
    # Many lab systems send "10^3/uL" without escaping '^' (\S\): HL7 splits it into
    # identifier "10" and text "3/uL". It was refused as "unit '10' is not a known unit".
    anc = only_anc(oru(anc_obx(unit=unit)))
    assert (anc.value, anc.original_unit) == (value, unit)


def test_a_real_component_split_is_not_rejoined():
    # identifier "K/uL", text "thousand per microliter": the identifier is the unit.
    anc = only_anc(oru(anc_obx(unit="K/uL^thousand per microliter^L")))
    assert (anc.value, anc.original_unit) == (400, "K/uL")


def test_caret_split_of_an_unknown_unit_is_still_refused_with_the_whole_unit():
    with pytest.raises(InputRejected) as info:
        parse_hl7(oru(anc_obx(unit="10^12/L")))
    assert info.value.rejection.code == "unknown_unit"
    assert "'10^12/L'" in info.value.rejection.reason


# ---------------------------------------------------------------- logs


def test_malformed_escape_does_not_log_the_patient_identifier(caplog):
    # python-hl7 logs the whole field on a malformed escape sequence ("\\" is an empty one).
    pid = "PID|1||SECRET123\\\\X^^^HOSP^MR||Doe^Jane"
    with caplog.at_level(logging.DEBUG):
        parse_hl7(oru(anc_obx(), pid=pid))
    assert "SECRET123" not in caplog.text
    assert not any("SECRET123" in str(r.args) for r in caplog.records)


# ---------------------------------------------------------------- derived ANC


WBC = "OBX|{n}|NM|6690-2^Leukocytes^LN||4.0|10*3/uL||L|||F"
NEUT_TOTAL = "OBX|{n}|NM|770-8^Neutrophils/100 leukocytes by automated count^LN||25|%||L|||F"
SEGS = "OBX|{n}|NM|26505-8^Segmented neutrophils/100 leukocytes^LN||20|%||L|||F"
BANDS = "OBX|{n}|NM|35332-6^Band neutrophils/100 leukocytes^LN||5|%||N|||F"


@pytest.mark.parametrize("order", [(WBC, NEUT_TOTAL, SEGS, BANDS), (WBC, SEGS, NEUT_TOTAL, BANDS),
                                   (BANDS, NEUT_TOTAL, SEGS, WBC)])
def test_bands_are_added_to_segmented_not_to_total_neutrophils(order):
    # An automated total (770-8, bands included) and a manual smear (segs 26505-8 + bands 35332-6)
    # in one specimen: ANC = 4000 x (20 + 5) % = 1000. With 770-8 listed first it was
    # 4000 x (25 + 5) % = 1200: the bands counted twice, and the value depended on OBX order.
    obxs = [seg.format(n=i) for i, seg in enumerate(order, 1)]
    anc = only_anc(oru(*obxs))
    assert (anc.value, anc.provenance) == (1000, "derived")
    assert sorted(c.code for c in anc.components) == ["26505-8", "35332-6", "6690-2"]


def test_total_neutrophils_without_bands_is_preferred_to_segmented():
    anc = only_anc(oru(*(s.format(n=i) for i, s in enumerate((WBC, SEGS, NEUT_TOTAL), 1))))
    assert anc.value == 1000  # 4000 x 25 %, not 4000 x 20 % (segmented only)


def test_administration_time_without_offset_takes_the_offset_of_msh_7():
    from samples import RAS_IVIG, hl7_text
    text = (hl7_text(RAS_IVIG).replace("20240305124500+0000", "20240305124500-0500")
            .replace("20240305083000+0000", "20240305083000"))
    [admin] = parse_hl7(text).events
    assert admin.started_at == datetime(2024, 3, 5, 13, 30, tzinfo=timezone.utc)


# ---------------------------------------------------------------- configured time zone

LONDON = "Europe/London"
MSH_NO_OFFSET = MSH.replace("20240101120000+0100", "20240101120000")


def collected(obr_time: str, zone: str = LONDON, msh: str = MSH_NO_OFFSET):
    from zoneinfo import ZoneInfo
    obr = OBR.replace("20240101083000+0100", obr_time)
    [anc] = parse_hl7(oru(anc_obx(), msh=msh, obr=obr), CodeMap(), ZoneInfo(zone)).events
    return anc.collected_at


def test_a_time_without_any_offset_is_in_the_configured_zone_with_its_summer_time():
    # A London lab sends local wall-clock times and no offset anywhere: a 08:30 draw in July
    # (BST, +01:00) was read as 08:30Z, an hour late; in January (GMT) it is 08:30Z.
    utc = timezone.utc
    assert collected("20240701083000") == datetime(2024, 7, 1, 7, 30, tzinfo=utc)
    assert collected("20240101083000") == datetime(2024, 1, 1, 8, 30, tzinfo=utc)
    assert collected("20240701083000").utcoffset() == timedelta(hours=1)


def test_an_offset_in_the_field_or_in_msh_7_wins_over_the_configured_zone():
    utc = timezone.utc
    assert collected("20240701083000+0200") == datetime(2024, 7, 1, 6, 30, tzinfo=utc)
    assert collected("20240701083000", msh=MSH.replace("+0100", "-0500")) == \
        datetime(2024, 7, 1, 13, 30, tzinfo=utc)


def test_without_the_setting_a_time_without_any_offset_is_utc():
    assert collected("20240701083000", zone="UTC") == datetime(2024, 7, 1, 8, 30, tzinfo=timezone.utc)
    from neutrowatch.platform.settings import Settings
    assert Settings().hl7_default_timezone == "UTC"


def test_an_unknown_zone_name_is_refused_at_start():
    from pydantic import ValidationError

    from neutrowatch.platform.settings import Settings
    with pytest.raises(ValidationError, match="IANA"):
        Settings(hl7_default_timezone="Europe/Londn")


# ---------------------------------------------------------------- result by result


def pct_obx(value="55", seq=2):
    return f"OBX|{seq}|NM|770-8^Neutrophils/100 leukocytes in Blood by Automated count^LN||{value}|%||L|||F"


def wbc_obx(value="1.6", seq=3):
    return f"OBX|{seq}|NM|6690-2^Leukocytes [#/volume] in Blood by Automated count^LN||{value}|10*3/uL||L|||F"


def test_a_masked_percent_does_not_throw_away_the_direct_count():
    # 83 of 896 real specimens with a readable ANC were lost this way: refused whole as non_numeric
    result = parse_hl7(oru(pct_obx("___"), wbc_obx(), anc_obx("0.08", "K/uL").replace("OBX|1|", "OBX|4|")))
    [anc] = result.events
    assert (anc.value, anc.provenance) == (80, "direct")
    [problem] = result.problems
    assert (problem.code, problem.field) == ("non_numeric_value", "OBX[1]-5")


def test_no_count_is_derived_from_a_specimen_one_of_whose_inputs_is_unreadable():
    # WBC x (an unreadable %) would be a count computed without it: none is made, and the sender
    # is told; the temperature of the same message is kept
    temp = "OBX|5|NM|8310-5^Body temperature^LN||38.6|Cel||H|||F"
    result = parse_hl7(oru(pct_obx("___"), wbc_obx(), temp))
    assert [e.analyte for e in result.events] == ["body_temperature"]
    assert [p.code for p in result.problems] == ["non_numeric_value", "anc_not_derived"]


@pytest.mark.parametrize("obx,code,field", [
    (anc_obx("0.45").replace("|NM|", "|TX|"), "non_numeric_value", "OBX[1]-2"),
    (anc_obx("0.45").replace("|NM|", "|CWE|"), "non_numeric_value", "OBX[1]-2"),
    (anc_obx("^0.45"), "non_numeric_value", "OBX[1]-5"),
    ("OBX|1|NM|751-8^Neutrophils [#/volume] in Blood^LN||", "missing_value", "OBX[1]-5"),  # cut short
])
def test_a_count_that_cannot_be_read_is_refused_never_acknowledged_and_dropped(obx, code, field):
    # each was accepted as "0 events" before: AA for a count never kept
    with pytest.raises(InputRejected) as info:
        parse_hl7(oru(obx))
    assert (info.value.rejection.code, info.value.rejection.field) == (code, field)


def test_a_cancelled_result_needs_no_numeric_value():
    obx = anc_obx("Cannot obtain", status="X").replace("|NM|", "|TX|")
    [anc] = parse_hl7(oru(obx)).events
    assert (anc.status, anc.value) == ("X", None)
