"""The operations files (ops/, docker-compose.yml) are checked by the real tools, and every metric,
runbook link, scrape port and dashboard query they name exists. A test is skipped only when the
tool it runs (promtool, docker-compose) is missing; `make setup` installs both."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
PROM = OPS / "prometheus"
RULES = PROM / "rules" / "neutrowatch.rules.yml"
RULE_TESTS = PROM / "rules" / "neutrowatch.rules.test.yml"
RUNBOOK = OPS / "README.md"
DASHBOARDS = sorted((OPS / "grafana" / "dashboards").glob("*.json"))
DATASOURCES = OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = OPS / "grafana" / "provisioning" / "dashboards" / "neutrowatch.yml"
PROMETHEUS_OWN = {"up"}  # series Prometheus writes for every scrape target


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:  # the only reason to skip: CI runs `make setup`, which installs it
        pytest.skip(f"{name} is not installed; `make setup` installs it (Debian package), this check needs it")
    return path


def run(args: list[str], cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


# ----------------------------------------------------------------------------- the tools

def test_promtool_checks_the_rules():
    run([tool("promtool"), "check", "rules", RULES.name], cwd=RULES.parent)


def test_promtool_unit_tests_of_the_rules_pass():
    run([tool("promtool"), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent)


def test_promtool_checks_the_prometheus_config_and_finds_the_rules():
    out = run([tool("promtool"), "check", "config", "prometheus.yml"], cwd=PROM)
    assert "1 rule files found" in out and RULES.name in out


def test_amtool_checks_the_alertmanager_config():
    out = run([tool("amtool"), "check-config", "alertmanager.yml"], cwd=OPS / "alertmanager")
    assert "SUCCESS" in out


def test_alertmanager_pages_for_critical_pipeline_alerts_and_inhibits_only_known_ones():
    config = yaml.safe_load((OPS / "alertmanager" / "alertmanager.yml").read_text())
    critical = [r for r in config["route"]["routes"] if r["matchers"] == ['severity="critical"']]
    assert critical and critical[0]["receiver"] != config["route"]["receiver"]
    names = {rule["alert"] for rule in rules()}
    for inhibit in config["inhibit_rules"]:
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            assert matcher.split("=", 1)[1].strip('"') in names, matcher


def compose_env(**overrides: str) -> dict:
    """The environment of a deployment that followed the runbook: ops/env.example as .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEUTROWATCH_", "GRAFANA_"))}
    for line in (OPS / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    env.update(overrides)
    return env


def test_docker_compose_accepts_the_file_with_the_example_environment():
    run([tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT, env=compose_env())


def test_docker_compose_refuses_to_run_without_the_grafana_password():
    env = compose_env()
    del env["GRAFANA_ADMIN_PASSWORD"]
    done = subprocess.run([tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in done.stderr


@pytest.fixture(scope="module")
def compose() -> dict:
    out = run([tool("docker-compose"), "-f", "docker-compose.yml", "config"], cwd=ROOT, env=compose_env())
    return yaml.safe_load(out)["services"]


def test_the_monitor_scales_and_every_service_is_health_checked(compose):
    monitor = compose["monitor"]
    assert "container_name" not in monitor and "ports" not in monitor
    assert compose["ingest"]["environment"]["NEUTROWATCH_UP_MONITOR"] == "false"
    assert "NEUTROWATCH_NOTIFY_ROUTING_FILE" not in compose["ingest"]["environment"]
    for name, service in compose.items():
        if name != "topics":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dependency, how in service.get("depends_on", {}).items():
            assert how["condition"] in ("service_healthy", "service_completed_successfully"), (name, dependency)
    assert "--appendonly" in compose["redis"]["command"]


def _mount_target(service: dict, source_suffix: str) -> str:
    for volume in service["volumes"]:
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        if str(source).endswith(source_suffix):
            return target
    raise AssertionError(f"nothing mounted from {source_suffix}")


def test_prometheus_scrapes_the_port_each_service_serves_metrics_on(compose):
    config = yaml.safe_load((PROM / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    ports = {"ingest": "NEUTROWATCH_HTTP_PORT", "notify": "NEUTROWATCH_HTTP_PORT",
             "monitor": "NEUTROWATCH_MONITOR_HTTP_PORT"}
    for service, variable in ports.items():
        job = jobs[f"neutrowatch-{service}"]
        port = int(compose[service]["environment"][variable])
        if service == "monitor":  # every replica: one A record each
            assert job["dns_sd_configs"] == [{"names": ["monitor"], "type": "A", "port": port,
                                              "refresh_interval": "15s"}]
        else:
            assert job["static_configs"][0]["targets"] == [f"{service}:{port}"]
    assert _mount_target(compose["prometheus"], "ops/prometheus") == "/etc/prometheus"
    alerting = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alerting == ["alertmanager:9093"] and "alertmanager" in compose
    assert _mount_target(compose["alertmanager"], "ops/alertmanager") == "/etc/alertmanager"


def test_grafana_provisioning_points_at_the_mounted_dashboards(compose):
    provider = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]
    assert _mount_target(compose["grafana"], "ops/grafana/dashboards") == provider["options"]["path"]
    assert _mount_target(compose["grafana"], "ops/grafana/provisioning") == "/etc/grafana/provisioning"


# ----------------------------------------------------------------------------- metric names

def exposed_metric_names() -> set[str]:
    """Every series name the neutrowatch registry can expose (counters as _total, histograms as
    _bucket/_sum/_count), whether or not a labelled child exists yet."""
    import neutrowatch.platform.metrics  # noqa: F401  (registers the metrics)
    from prometheus_client import REGISTRY

    suffixes = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count", "_created"),
                "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
    return {family.name + s for family in REGISTRY.collect() for s in suffixes.get(family.type, ("",))}


_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels, keywords or numbers)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    return {m.group(1) for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)\s*(\()?", expr)
            if not m.group(2) and m.group(1) not in _KEYWORDS}


def unknown_metrics(exprs: list[str]) -> set[str]:
    known = exposed_metric_names() | PROMETHEUS_OWN
    return {name for expr in exprs for name in metric_names(expr)} - known


def test_the_metric_name_check_finds_names_and_catches_a_typo():
    expr = ('histogram_quantile(0.99, sum by (le) (rate(neutrowatch_monitor_end_to_end_latency_seconds_bucket'
            '{job=~"a.*"}[5m]))) > 1e3 and on (job) up == 0')
    assert metric_names(expr) == {"neutrowatch_monitor_end_to_end_latency_seconds_bucket", "up"}
    assert unknown_metrics([expr]) == set()
    assert unknown_metrics(["rate(neutrowatch_ingest_mesages_total[5m])"]) == {"neutrowatch_ingest_mesages_total"}
    assert unknown_metrics(["neutrowatch_ingest_messages"]) == {"neutrowatch_ingest_messages"}  # counters end in _total


# ----------------------------------------------------------------------------- rules and runbook

def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def runbook_anchors() -> set[str]:
    """GitHub's heading anchors of ops/README.md (headings outside code blocks)."""
    anchors, fenced = set(), False
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_every_rule_has_severity_summary_description_and_its_own_runbook_section():
    anchors = runbook_anchors()
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)) and len(names) >= 10
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"].strip() and notes["description"].strip(), rule["alert"]
        path, _, anchor = notes["runbook_url"].partition("#")
        assert path.endswith("ops/README.md") and anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in anchors, f"ops/README.md has no section '{rule['alert']}'"


def test_rules_use_only_metrics_the_services_expose():
    assert unknown_metrics([rule["expr"] for rule in rules()]) == set()


# ----------------------------------------------------------------------------- dashboards

def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def test_dashboards_are_valid_grafana_json_on_the_provisioned_datasource():
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    assert len(DASHBOARDS) >= 2
    uids = [json.loads(path.read_text())["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert isinstance(board["schemaVersion"], int) and board["title"], path.name
        cells: set[tuple[int, int]] = set()
        for panel in panels(board):
            grid = panel["gridPos"]
            assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, (path.name, panel["title"])
            area = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                    for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & area, f"{path.name}: '{panel['title']}' overlaps another panel"
            cells |= area
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == uid and panel["targets"], (path.name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == uid and target["expr"].strip(), (path.name, panel["title"])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_use_only_metrics_the_services_expose(path):
    board = json.loads(path.read_text())
    exprs = [t["expr"] for p in panels(board) for t in p.get("targets", [])]
    assert unknown_metrics(exprs) == set()
