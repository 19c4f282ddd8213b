"""The demo data set (services/neutrowatch/demo/data): regenerable, parsed as the feeds send it,
and `neutrowatch analyze` finds exactly the intended alert kinds per patient (none for the
benign-ethnic-neutropenia patient, thanks to her baseline in the demo's detection config)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from neutrowatch import cli
from neutrowatch.demo import dataset, generate
from neutrowatch.demo.console import alert_line, patient_url
from neutrowatch.demo.runner import prepare
from neutrowatch.notify import routing
from neutrowatch.parsing.fhir import parse_fhir
from neutrowatch.parsing.hl7v2 import parse_hl7
from neutrowatch.platform.settings import Settings

DATA = dataset.DATA
PATIENTS = {p["key"]: p for p in dataset.manifest()["patients"]}


def analyze(capsys, *argv: str) -> tuple[list[dict], str]:
    rc = cli.main(["analyze", *argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return [json.loads(line) for line in out.splitlines()], err


def test_generated_files_are_current(tmp_path):
    written = generate.build(tmp_path)
    assert written
    for path in written:
        rel = path.relative_to(tmp_path)
        assert path.read_bytes() == (DATA / rel).read_bytes(), f"regenerate: python -m neutrowatch.demo.generate ({rel})"


def test_the_data_set_has_the_intended_patients_and_feeds():
    assert set(PATIENTS) == {"DEMOHOSP|IVIG-01", "CYCLIC-02", "FEBRILE-03", "DEMOHOSP|BEN-04"}
    kinds = {key: {item.kind for item in section.items}
             for key, section in ((s.key, s) for s in dataset.synthetic_sections())}
    assert kinds["DEMOHOSP|IVIG-01"] == {"ORU^R01", "RAS^O17"}  # HL7 v2 results and IVIG infusions
    assert kinds["CYCLIC-02"] == {"Observation"}  # FHIR, one Observation per draw
    assert kinds["FEBRILE-03"] == {"Bundle", "Observation"}  # FHIR CBC Bundles and temperatures
    assert kinds["DEMOHOSP|BEN-04"] == {"ORU^R01"}


@pytest.mark.parametrize("key", sorted(PATIENTS))
def test_every_message_parses_as_its_feed_sends_it(key):
    section = next(s for s in dataset.synthetic_sections() if s.key == key)
    times = []
    for item in section.items:
        if item.channel == "hl7":
            events = parse_hl7(item.payload).events
        else:
            resource = json.loads(item.payload)
            expected = "Bundle" if item.endpoint == "/fhir" else item.endpoint.rsplit("/", 1)[1]
            events = parse_fhir(resource, expected_type=expected)
        assert events, item.label
        assert {e.patient_key for e in events} == {key}
        times.append(min(getattr(e, "collected_at", None) or e.started_at for e in events))
    assert times == sorted(times), "a patient's messages are sent in time order"


@pytest.mark.parametrize("key", sorted(PATIENTS))
def test_analyze_finds_exactly_the_intended_kinds(key, capsys):
    patient = PATIENTS[key]
    alerts, err = analyze(capsys, str(DATA / patient["file"]), "--config", str(dataset.DETECTION_CONFIG))
    assert "0 rejected" in err
    assert {a["patient_key"] for a in alerts} <= {key}
    assert {a["kind"] for a in alerts} == set(patient["expect"])


def test_the_story_of_each_patient(capsys):
    files = [str(DATA / p["file"]) for p in PATIENTS.values()]
    alerts, _ = analyze(capsys, *files, "--config", str(dataset.DETECTION_CONFIG))
    by_patient: dict[str, list[dict]] = {}
    for a in alerts:
        by_patient.setdefault(a["patient_key"], []).append(a)
    assert "DEMOHOSP|BEN-04" not in by_patient  # quiet
    ivig = next(a for a in by_patient["DEMOHOSP|IVIG-01"] if a["kind"] == "post_ivig_neutropenia_pattern")
    assert "every ~21 days" in ivig["summary"] and "1000 mg/kg" in ivig["summary"]
    cyclic = next(a for a in by_patient["CYCLIC-02"] if a["kind"] == "cyclic_neutropenia_suspected")
    assert "~20 days" in cyclic["summary"] or "~21 days" in cyclic["summary"]
    febrile = next(a for a in by_patient["FEBRILE-03"] if a["kind"] == "febrile_neutropenia")
    assert febrile["severity"] == "critical" and "38.6" in febrile["summary"]
    assert not any(a["kind"] == "alert_retracted" for a in alerts)


def test_without_her_baseline_the_ben_patient_would_be_paged(capsys):
    alerts, _ = analyze(capsys, str(DATA / PATIENTS["DEMOHOSP|BEN-04"]["file"]))
    assert alerts and {a["kind"] for a in alerts} >= {"grade_change"}


def test_the_routing_template_is_valid():
    text = dataset.ROUTING_TEMPLATE.read_text().replace("${DEMO_SINK}", "http://127.0.0.1:9/hooks")
    r = routing.parse(text, "routing.yaml")
    assert set(r.receivers) == {"ward-board", "haem-oncall", "haem-consultant"}
    critical = {"kind": "severe_neutropenia", "severity": "critical", "patient_key": "X"}
    assert [t.receiver for t in routing.targets(r, critical)] == ["ward-board"]


def test_prepare_points_notify_at_the_sink_and_loads_the_demo_config(tmp_path):
    settings, token = prepare(Settings(http_port=0, mllp_port=0), tmp_path, "http://127.0.0.1:9/hooks")
    assert settings.detection_config_file == dataset.DETECTION_CONFIG
    assert settings.http_port and settings.mllp_port
    assert settings.notify_api_token.get_secret_value() == token and len(token) >= 16
    assert "http://127.0.0.1:9/hooks/ward-board" in settings.notify_routing_file.read_text()
    assert settings.notify_public_url == f"http://127.0.0.1:{settings.http_port}"
    routing.load(settings.notify_routing_file)


def test_alert_line_and_patient_url():
    line = alert_line({"observed_at": "2025-01-07T08:00:00Z", "severity": "critical",
                       "patient_key": "DEMOHOSP|IVIG-01", "kind": "severe_neutropenia", "summary": "Severe."})
    assert line.split() == ["2025-01-07", "08:00", "CRITICAL", "DEMOHOSP|IVIG-01", "severe_neutropenia", "Severe."]
    assert patient_url("http://h:1", "DEMOHOSP|IVIG-01") == "http://h:1/patients/DEMOHOSP%7CIVIG-01"


def test_sample_messages_come_from_the_checkout():
    section = dataset.sample_section()
    assert section is not None and len(section.items) >= 20
    assert Path(dataset.SAMPLES).is_dir()


def test_delivery_line():
    from neutrowatch.demo.console import delivery_line
    line = delivery_line("haem-consultant", "escalation", 1, {"severity": "critical", "kind": "febrile_neutropenia",
                                                             "patient_key": "FEBRILE-03",
                                                             "observed_at": "2025-04-13T19:12:00Z"})
    assert line == ("  notify → haem-consultant: ESCALATION 1 (not acknowledged): CRITICAL febrile_neutropenia "
                    "for FEBRILE-03 (2025-04-13 19:12)")
