"""`analyze` over HL7 v2 and FHIR inputs (the parsers' fixtures), through the same engine."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from neutrowatch import analyze

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def run_analyze(paths, capsys):
    parser = argparse.ArgumentParser()
    analyze.add_arguments(parser)
    rc = analyze.run(parser.parse_args([str(p) for p in paths]))
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines()], err


def test_hl7_preliminary_then_corrected_alerts_once(tmp_path, capsys):
    pre = (FIX / "hl7" / "neutrowatch__oru_anc_preliminary.hl7").read_bytes()
    cor = (FIX / "hl7" / "neutrowatch__oru_anc_corrected.hl7").read_bytes()
    framed = tmp_path / "feed.mllp"
    framed.write_bytes(b"\x0b" + pre.strip() + b"\x1c\r" + b"\x0b" + cor.strip() + b"\x1c\r")
    rc, alerts, err = run_analyze([framed], capsys)
    assert rc == 0
    assert [a["kind"] for a in alerts] == ["severe_neutropenia"]
    assert "2 event(s)" in err


def test_hl7_fixtures_and_fhir_bundle_are_read(capsys):
    files = sorted((FIX / "hl7").glob("*.hl7")) + sorted((FIX / "fhir").glob("*.json"))
    rc, alerts, err = run_analyze(files, capsys)
    assert rc == 0
    assert "analyze:" in err and "event(s)" in err
    for a in alerts:
        assert a["schema"] == "neutrowatch.alert.v1"


def test_hl7_local_times_read_in_the_given_time_zone(tmp_path, capsys):
    # a sender whose timestamps carry no offset (MSH-7 none either), in London in summer
    msg = "\r".join([
        "MSH|^~\\&|LAB|HOSP|NW|HOSP|20240701100000||ORU^R01|TZ1|P|2.5.1",
        "PID|1||TZ1^^^HOSP^MR||Doe^Jane||19800101|F",
        "OBR|1|ORD1|FIL1|57021-8^CBC^LN|||20240701083000|||||||||||||||20240701090000|||F",
        "OBX|1|NM|751-8^Neutrophils [#/volume] in Blood^LN||0.3|10*3/uL||L|||F"])
    path = tmp_path / "london.hl7"
    path.write_text(msg)
    rc, alerts, _ = run_analyze([path], capsys)
    assert rc == 0 and alerts[0]["observed_at"] == "2024-07-01T08:30:00Z"
    rc, alerts, _ = run_analyze(["--hl7-default-timezone", "Europe/London", path], capsys)
    assert rc == 0 and alerts[0]["observed_at"] == "2024-07-01T07:30:00Z"
    rc, _, err = run_analyze(["--hl7-default-timezone", "Mars/Olympus", path], capsys)
    assert rc == 1 and "Mars/Olympus" in err


def oru(cid: str, collected: str, anc: str, patient: str = "FUT1^^^HOSP^MR||Doe^Jane||19800101") -> str:
    """An ORU^R01 with one direct ANC (10^3/uL) collected at ``collected`` (UTC)."""
    return "\r".join([
        f"MSH|^~\\&|LAB|HOSP|NW|HOSP|{collected}+0000||ORU^R01|{cid}|P|2.5.1",
        f"PID|1||{patient}|F",
        f"OBR|1|ORD-{cid}|FIL-{cid}|57021-8^CBC^LN|||{collected}+0000",
        f"OBX|1|NM|751-8^Neutrophils [#/volume] in Blood^LN||{anc}|10*3/uL|||||F"])


def test_a_count_dated_in_the_future_is_refused_and_the_later_300_still_alerts(tmp_path, capsys):
    path = tmp_path / "feed.hl7"
    path.write_text("\r\r".join([oru("A", "20240101080000", "3.0"), oru("B", "20620101080000", "2.9"),
                                 oru("C", "20240121080000", "0.3")]))
    rc, alerts, err = run_analyze([path], capsys)
    assert rc == 0 and [a["kind"] for a in alerts] == ["severe_neutropenia"]
    assert "future_time" in err and "2062-01-01T08:00:00+00:00" in err


def _century_ahead_feed(tmp_path) -> Path:
    """A date-shifted research export: every result a century in the future."""
    patient = "SHIFT1^^^HOSP^MR||Doe^Jane||20800101"
    path = tmp_path / "shifted.hl7"
    path.write_text("\r\r".join([oru("A", "21240101080000", "3.0", patient),
                                   oru("B", "21240121080000", "0.3", patient)]))
    return path


def test_nothing_analysed_exits_non_zero(tmp_path, capsys):
    rc, alerts, err = run_analyze([_century_ahead_feed(tmp_path)], capsys)
    assert rc == 1 and alerts == []
    assert "nothing in the input could be analysed" in err and "future_time" in err


def test_as_of_takes_a_date_shifted_export(tmp_path, capsys):
    rc, alerts, err = run_analyze(["--as-of", "2125-01-01T00:00:00Z", _century_ahead_feed(tmp_path)], capsys)
    assert rc == 0 and [a["kind"] for a in alerts] == ["severe_neutropenia"]
    assert "0 rejected" in err
