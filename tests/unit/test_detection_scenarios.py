"""The scenario library, run the way a user runs `neutrowatch analyze FILE [--config FILE]`."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from neutrowatch import analyze
from tests import scenario_builder

SCEN = Path(__file__).resolve().parents[1] / "scenarios"

EXPECTED = {
    # two pages (the first dip, and the one that established the pattern); the later dips are
    # expected, recorded not paged; chronic across the COVID rise
    "ivig_case": {"grade_change", "severe_neutropenia", "post_ivig_neutropenia_pattern", "recovery",
                  "chronic_neutropenia", "expected_dip"},
    "ivig_transient": {"recovery"},  # one mild count, not confirmed: no grade change
    # the third trough arrives when the period predicts: expected, recorded not paged
    "cyclic_dense": {"grade_change", "severe_neutropenia", "recovery", "cyclic_neutropenia_suspected",
                     "expected_dip"},
    "cyclic_sparse": {"severe_neutropenia", "recovery"},
    "infant_autoimmune": {"severe_neutropenia", "chronic_neutropenia"},
    "ben_stable": set(),
    "ben_fall": {"grade_change", "recovery"},
    "drug_induced": {"drug_associated_neutropenia_suspected", "grade_change", "recovery"},
    "rituximab_late": {"drug_associated_neutropenia_suspected", "grade_change", "recovery"},
    "febrile": {"severe_neutropenia", "febrile_neutropenia"},
    "febrile_sustained": {"rapid_decline", "febrile_neutropenia"},
    "corrected": {"severe_neutropenia", "alert_retracted"},
    "deleted": {"agranulocytosis", "alert_retracted"},
    "late_and_duplicated": {"grade_change", "severe_neutropenia", "recovery"},
    "ivig_escalation_no_baseline": {"ivig_baseline_missing"},
}


def analyze_file(name: str, capsys) -> tuple[int, list[dict], str]:
    parser = argparse.ArgumentParser()
    analyze.add_arguments(parser)
    argv = [str(SCEN / f"{name}.ndjson")]
    if (SCEN / f"{name}.config.json").exists():
        argv += ["--config", str(SCEN / f"{name}.config.json")]
    rc = analyze.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return rc, [json.loads(line) for line in out.splitlines()], err


def test_generated_files_are_current(tmp_path):
    scenario_builder.build(tmp_path)
    for path in tmp_path.iterdir():
        assert path.read_text() == (SCEN / path.name).read_text(), f"regenerate {path.name}"
    assert set(EXPECTED) == set(scenario_builder.SCENARIOS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scenario_emits_exactly_the_expected_kinds(name, capsys):
    rc, alerts, err = analyze_file(name, capsys)
    assert rc == 0
    assert {a["kind"] for a in alerts} == EXPECTED[name]
    assert "0 rejected" in err


def test_ivig_case_reports_per_cycle_figures_once(capsys):
    _, alerts, _ = analyze_file("ivig_case", capsys)
    [pattern] = [a for a in alerts if a["kind"] == "post_ivig_neutropenia_pattern"]
    ev = pattern["evidence"]
    assert ev["dips"] >= 2 and ev["nadir"] == 300
    cycle = ev["cycles"][0]
    assert cycle["dose_mg_per_kg"] == 1000
    assert cycle["pre"]["value"] == 800 and cycle["early_24_48h"]["value"] == 400
    assert cycle["nadir_days_1_7"]["value"] == 300 and cycle["recovered"] is True
    assert ev["cycles"][1]["interval_days"] == 21.0


def test_ivig_case_full_history_matches_the_case_report():
    from neutrowatch.detection import DetectionConfig, PatientState, active_alerts, step
    state = PatientState.empty()
    for ev in scenario_builder.ivig_case().events:
        state, _ = step(state, ev, DetectionConfig())
    [p] = [a for a in active_alerts(state) if a.kind == "post_ivig_neutropenia_pattern"]
    ev = p.evidence
    assert (ev["median_pre"], ev["median_24_48h"], ev["nadir"]) == (1100, 400, 300)
    assert ev["range_pre"] == [700, 2400] and len(ev["cycles"]) == 6
    assert ev["dips"] == 5 and ev["evaluable_cycles"] == 6  # the infection cycle is the outlier
    assert [c["dip"] for c in ev["cycles"]] == [True, True, False, True, True, True]


def test_recovery_after_drug_says_so(capsys):
    _, alerts, _ = analyze_file("drug_induced", capsys)
    [rec] = [a for a in alerts if a["kind"] == "recovery"]
    assert rec["evidence"]["drug_association"]["drug_class"] == "clozapine"
    [drug] = [a for a in alerts if a["kind"] == "drug_associated_neutropenia_suspected"]
    assert "during clozapine treatment" in drug["summary"]


def test_febrile_is_one_critical_alert_per_episode(capsys):
    _, alerts, _ = analyze_file("febrile", capsys)
    febrile = [a for a in alerts if a["kind"] == "febrile_neutropenia"]
    assert len(febrile) == 1 and febrile[0]["severity"] == "critical"
    assert febrile[0]["anc_cells_per_ul"] == 400


def test_retraction_references_the_retracted_alert(capsys):
    _, alerts, _ = analyze_file("corrected", capsys)
    severe, retracted = alerts[0], alerts[1]
    assert retracted["retracts_alert_id"] == severe["alert_id"]
    assert retracted["evidence"]["cause"] == "corrected_result"


def test_late_and_duplicated_ends_like_the_ordered_stream():
    from neutrowatch.detection import DetectionConfig, PatientState, step
    events = scenario_builder.late_and_duplicated().events

    def final(evs):
        state = PatientState.empty()
        for ev in evs:
            state, _ = step(state, ev, DetectionConfig())
        # the alerts on record (id -> kind, time); how one came to stand (sent under another id
        # and moved by the late result) and the withdrawn ones differ by arrival order
        return {aid: (e.kind, e.t) for aid, e in state.ledger.recorded().items()}

    ordered = sorted(set(events), key=lambda e: (e.collected_at, e.status))
    assert final(events) == final(ordered)


def test_alerts_validate_against_the_schema(capsys):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SCEN.parents[1] / "schemas" / "alert.v1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for name in EXPECTED:
        _, alerts, _ = analyze_file(name, capsys)
        for a in alerts:
            validator.validate(a)


def test_unreadable_and_rejected_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"schema": "neutrowatch.lab-result.v1", "patient_id": "x"}\nnot json\n{"a": 1}\n')
    parser = argparse.ArgumentParser()
    analyze.add_arguments(parser)
    rc = analyze.run(parser.parse_args([str(bad), str(tmp_path / "missing.hl7")]))
    out, err = capsys.readouterr()
    assert rc == 1 and out == ""
    assert "invalid_record" in err and "not_json" in err and "unknown_record" in err
    assert "unreadable" in err


def test_the_ivig_case_file_pages_twice_is_chronic_and_lists_its_expected_dips(capsys):
    # the case report's patient was judged safe without treatment: paged for the first dip and the
    # one that establishes the pattern, not for every cycle (five critical pages before)
    _, alerts, _ = analyze_file("ivig_case", capsys)
    assert [a["observed_at"][:10] for a in alerts if a["severity"] == "critical"] == ["2024-01-02", "2024-01-23"]
    assert [a["kind"] for a in alerts].count("chronic_neutropenia") == 1
    dips = [a for a in alerts if a["kind"] == "expected_dip"]
    assert [d["evidence"]["infusion"][0]["started_at"][:10] for d in dips] == ["2024-03-04", "2024-03-25", "2024-04-15"]
