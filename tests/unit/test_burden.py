"""The alert-burden report: neutrowatch.burden (pure) and `neutrowatch analyze --burden`."""
from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from neutrowatch import analyze
from neutrowatch.burden import DAYS_PER_MONTH, Burden, BurdenRow, Span, alert_burden, format_table

SCEN = Path(__file__).resolve().parents[1] / "scenarios"
T0 = datetime(2024, 1, 1, 8, 0, tzinfo=timezone.utc)


def alert(kind: str, severity: str = "info", patient: str = "A|1", observed: datetime = T0,
          episode_start: str | None = None) -> dict[str, Any]:
    evidence: dict[str, Any] = {"rule": kind}
    if episode_start is not None:
        evidence["episode_start"] = {"observation_id": "o1", "value": 300, "unit": "cells/uL",
                                     "collected_at": episode_start}
    return {"schema": "neutrowatch.alert.v1", "alert_id": f"{kind}-{observed.isoformat()}",
            "patient_id": patient.split("|")[-1], "patient_key": patient, "kind": kind,
            "severity": severity, "observed_at": observed.isoformat(), "summary": "s",
            "evidence": evidence}


def span(days: float, start: datetime = T0) -> Span:
    return Span(start, start + timedelta(days=days))


def row(burden: Burden, label: str) -> BurdenRow:
    [r] = [r for r in burden.patients if r.label == label]
    return r


def test_counts_alerts_pages_dips_and_retractions_per_patient():
    records = [alert("grade_change", "warning"), alert("severe_neutropenia", "critical"),
               alert("febrile_neutropenia", "critical"), alert("expected_dip"),
               alert("alert_retracted"), alert("agranulocytosis", "critical", patient="B|2")]
    b = alert_burden(records, {"A|1": span(30.44), "B|2": span(30.44)})
    a = row(b, "A|1")
    assert (a.alerts, a.critical_pages, a.expected_dips, a.retracted) == (5, 2, 1, 1)
    assert (b.overall.alerts, b.overall.critical_pages, b.overall.expected_dips, b.overall.retracted) == (6, 3, 1, 1)
    assert [r.label for r in b.rows] == ["A|1", "B|2", "overall (2 patients)"]


def test_episodes_are_distinct_episode_starts_of_the_episode_kinds():
    start = "2024-01-01T06:00:00+00:00"
    records = [
        alert("severe_neutropenia", "critical", observed=T0, episode_start=start),
        alert("agranulocytosis", "critical", observed=T0 + timedelta(days=1), episode_start=start),
        alert("expected_dip", observed=T0 + timedelta(days=2), episode_start="2024-01-01T06:00:00Z"),
        alert("recovery", observed=T0 + timedelta(days=9), episode_start="2023-12-01T00:00:00+00:00"),
        alert("chronic_neutropenia", "warning", episode_start="2023-11-01T00:00:00+00:00"),
    ]
    b = alert_burden(records, {"A|1": span(10)})
    assert row(b, "A|1").episodes == 1  # one start, however written; other kinds do not count
    assert row(b, "A|1").pages_per_episode == 2.0


def test_an_episode_alert_without_episode_start_counts_by_its_observed_time():
    records = [alert("severe_neutropenia", "critical", observed=T0),
               alert("severe_neutropenia", "critical", observed=T0),  # the same episode twice
               alert("severe_neutropenia", "critical", observed=T0 + timedelta(days=20)),
               alert("agranulocytosis", "critical", observed=T0 + timedelta(days=21))]
    r = row(alert_burden(records, {"A|1": span(40)}), "A|1")
    assert r.episodes == 3
    assert r.pages_per_episode == pytest.approx(4 / 3)


def test_no_episode_means_no_pages_per_episode():
    r = row(alert_burden([alert("febrile_neutropenia", "critical")], {"A|1": span(5)}), "A|1")
    assert r.episodes == 0 and r.pages_per_episode is None


def test_patient_months_are_the_event_span_over_30_44_days_and_at_least_one_day():
    records = [alert("severe_neutropenia", "critical"), alert("severe_neutropenia", "critical", patient="B|2")]
    b = alert_burden(records, {"A|1": span(2 * DAYS_PER_MONTH), "B|2": span(0)})
    assert row(b, "A|1").patient_months == pytest.approx(2.0)
    assert row(b, "A|1").pages_per_patient_month == pytest.approx(0.5)
    assert row(b, "B|2").patient_months == pytest.approx(1 / DAYS_PER_MONTH)
    assert b.overall.patient_months == pytest.approx(2.0 + 1 / DAYS_PER_MONTH)
    assert b.overall.pages_per_patient_month == pytest.approx(2 / (2.0 + 1 / DAYS_PER_MONTH))


def test_a_patient_without_alerts_still_counts_its_patient_months():
    b = alert_burden([alert("severe_neutropenia", "critical")], {"A|1": span(30.44), "Q|9": span(30.44)})
    quiet = row(b, "Q|9")
    assert (quiet.alerts, quiet.critical_pages, quiet.episodes) == (0, 0, 0)
    assert quiet.pages_per_patient_month == 0.0
    assert b.overall.patient_months == pytest.approx(2.0)
    assert b.overall.pages_per_patient_month == pytest.approx(0.5)


def test_a_patient_without_a_span_leaves_patient_months_unknown_not_understated():
    b = alert_burden([alert("severe_neutropenia", "critical", patient="B|2")], {"A|1": span(30.44)})
    assert row(b, "B|2").patient_months is None and row(b, "B|2").pages_per_patient_month is None
    assert b.overall.patient_months is None and b.overall.pages_per_patient_month is None


def test_no_alerts_and_no_patients():
    b = alert_burden([], {})
    assert b.patients == ()
    assert (b.overall.alerts, b.overall.episodes, b.overall.patient_months) == (0, 0, None)
    assert "overall (0 patients)" in format_table(b)


def test_the_table_is_aligned_with_the_overall_row_last():
    records = [alert("severe_neutropenia", "critical", patient="LONG-AUTHORITY|patient-1"),
               alert("grade_change", "warning", patient="B|2")]
    text = format_table(alert_burden(records, {"LONG-AUTHORITY|patient-1": span(61), "B|2": span(3)}))
    lines = text.splitlines()
    assert lines[0].split("  ")[0].strip() == "patient" and "pages/patient-month" in lines[0]
    assert lines[-1].startswith("overall (2 patients)")
    assert [ln.split()[0] for ln in lines[2:4]] == ["B|2", "LONG-AUTHORITY|patient-1"]
    assert len({len(ln) for ln in lines}) == 1  # numbers right-aligned to one width
    b_cells = re.split(r"\s{2,}", lines[2])
    assert b_cells == ["B|2", "1", "0", "0", "-", f"{3 / DAYS_PER_MONTH:.2f}", "0.00", "0", "0"]


# ---------------------------------------------------------------------------- analyze --burden

def run_analyze(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    analyze.add_arguments(parser)
    rc = analyze.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def expected_row(alerts: list[dict[str, Any]], records: list[dict[str, Any]]) -> list[str]:
    """The figures counted independently from the alert NDJSON and the input file."""
    episode_kinds = {"severe_neutropenia", "agranulocytosis", "expected_dip"}
    starts = {datetime.fromisoformat(((a["evidence"].get("episode_start") or {}).get("collected_at")
                                      or a["observed_at"]))
              for a in alerts if a["kind"] in episode_kinds}
    pages = sum(a["severity"] == "critical" for a in alerts)
    times = [datetime.fromisoformat(r.get("collected_at") or r["started_at"]) for r in records]
    months = max((max(times) - min(times)).total_seconds() / 86400, 1) / 30.44
    return [str(len(alerts)), str(pages), str(len(starts)),
            f"{pages / len(starts):.2f}" if starts else "-", f"{months:.2f}", f"{pages / months:.2f}",
            str(sum(a["kind"] == "expected_dip" for a in alerts)),
            str(sum(a["kind"] == "alert_retracted" for a in alerts))]


def test_analyze_burden_on_the_ivig_case_matches_its_alerts(capsys):
    path = str(SCEN / "ivig_case.ndjson")
    rc, plain_out, plain_err = run_analyze([path], capsys)
    assert rc == 0
    alerts = [json.loads(line) for line in plain_out.splitlines()]
    records = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

    rc, out, err = run_analyze(["--burden", path], capsys)
    assert rc == 0
    assert err == plain_err  # the summary on stderr is unchanged
    assert not any(line.startswith("{") for line in out.splitlines())  # no alert NDJSON
    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", ln) for ln in out.splitlines())}
    want = expected_row(alerts, records)
    assert rows["SCEN|ivig-case"] == want
    assert rows["overall (1 patient)"] == want
    assert want[1] != "0"  # the case does page: the comparison above is not vacuous
