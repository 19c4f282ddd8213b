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
