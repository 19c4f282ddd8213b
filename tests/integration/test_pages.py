"""The browser pages on the whole pipeline (`neutrowatch up` with notify, real SMTP and webhook
receivers), driven by real headless Chromium: the IVIG case report's timeline with every count,
infusion and alert drawn; acknowledging a critical alert from the alerts page."""
from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from monitor_helpers import fresh, new_tag, produce
from notify_helpers import WEBHOOK_SECRET, Mailbox, Webhook, wait_until
from processes import http_json, start_up
from neutrowatch.detection import DetectionConfig
from neutrowatch.detection.grades import GRADES

pytestmark = pytest.mark.integration
playwright_sync = pytest.importorskip("playwright.sync_api")

API_TOKEN = "pages-test-token"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path("/tmp")
ROUTING = """
receivers:
  oncall-email: {{type: email, to: [haem-oncall@hospital.example]}}
  ward-board: {{type: webhook, url: "http://127.0.0.1:{hook}/hook", secret_env: NW_TEST_WEBHOOK_SECRET}}
route:
  receiver: oncall-email
  routes:
    - match: {{severity: critical}}
      receiver: ward-board
      escalation: {{receivers: [oncall-email], delay: 2s}}
"""


# ----------------------------------------------------------------------------- the stack

@pytest.fixture(scope="module")
def stack(kafka_bootstrap, redis_url, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium (make setup installs it)")
    mailbox, hook = Mailbox().start(), Webhook().start()
    routing = tmp_path_factory.mktemp("pages") / "routing.yaml"
    routing.write_text(ROUTING.format(hook=hook.port))
    name = uuid.uuid4().hex[:8]
    prefix = f"nwtest:{name}"
    service, _, http_port = start_up(
        kafka_bootstrap, redis_url,
        ["--notify-routing-file", str(routing), "--notify-smtp-port", str(mailbox.port),
         "--notify-group", f"notify-{name}", "--notify-redis-prefix", prefix,
         "--notify-offset-reset", "latest", "--notify-tick-seconds", "0.1"],
        env={"NW_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET, "NEUTROWATCH_NOTIFY_API_TOKEN": API_TOKEN,
             "NEUTROWATCH_NOTIFY_ACK_SECRET": "ack-" + name})
    yield {"url": f"http://127.0.0.1:{http_port}", "hook": hook, "prefix": prefix, "service": service,
           "redis": redis_url, "kafka": kafka_bootstrap}
    service.stop()
    mailbox.stop()
    hook.stop()
    # what the server logged: never a patient identifier
    assert "SCEN|" not in service.output() and "ivig-case" not in service.output()


@pytest.fixture(scope="module")
def browser(stack):
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser, base: str):
        self.context = browser.new_context(viewport={"width": 1360, "height": 900}, timezone_id="UTC")
        self.page = self.context.new_page()
        self.base = base
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def open(self, path: str):
        response = self.page.goto(self.base + path)
        self.page.wait_for_selector("body[data-ready]", timeout=20000)
        return response

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, stack):
    p = Page(browser, stack["url"])
    yield p
    p.close()


def get(stack, path: str):
    return http_json(stack["url"] + path)


def q(key: str) -> str:
    return urllib.parse.quote(key, safe="")


def patient_alerts(stack, key: str) -> list[dict]:
    status, body = get(stack, f"/alerts?patient={q(key)}&limit=500")
    assert status == 200, body
    return body["alerts"]


def drawn_alerts(alerts: list[dict]) -> list[dict]:
    """What the chart must mark: every alert but retraction notices and the alerts they withdrew."""
    withdrawn = {a["retracts_alert_id"] for a in alerts if a["kind"] == "alert_retracted"}
    return [a for a in alerts if a["kind"] != "alert_retracted" and a["alert_id"] not in withdrawn]


def expected_from_scenario(records: list[dict]) -> dict[str, int]:
    """Counts the timeline must show, from the scenario file itself."""
    anc: dict[str, str] = {}
    for r in records:
        if r["schema"] == "neutrowatch.lab-result.v1" and r["analyte"] == "anc":
            anc[r["observation_id"]] = r["status"]
    ivig = {r["administration_id"] for r in records if r["schema"] == "neutrowatch.medication-administration.v1"
            and r["drug_class"] == "ivig" and r["status"] not in ("not-done", "entered-in-error")}
    watched = {w.drug_class for w in DetectionConfig().watch_list} | {"gcsf"}  # the drugs the engine keeps
    drugs = {r["administration_id"] for r in records if r["schema"] == "neutrowatch.medication-administration.v1"
             and r["drug_class"] in watched}
    return {"anc": sum(1 for s in anc.values() if s not in ("X", "D")), "ivig": len(ivig), "drugs": len(drugs)}


def settled(stack, records: list[dict], timeout: float = 90) -> tuple[str, list[dict]]:
    """Feed a scenario through the pipeline; wait until every count is in and the alerts are stable."""
    key = records[0]["patient_key"]
    produce(stack["kafka"], records)
    want = expected_from_scenario(records)

    def complete():
        status, body = get(stack, f"/patients/{q(key)}/anc")
        return status == 200 and len(body["anc"]) == want["anc"] and \
            sum(a["role"] == "ivig" for a in body["administrations"]) == want["ivig"]
    assert wait_until(complete, timeout), stack["service"].output()[-3000:]
    seen: list = []

    def stable():
        ids = sorted(a["alert_id"] for a in patient_alerts(stack, key))
        seen.append(ids)
        return len(seen) >= 8 and ids and all(s == ids for s in seen[-8:])  # unchanged for ~2 s
    assert wait_until(stable, 45, every=0.25), stack["service"].output()[-3000:]
    return key, patient_alerts(stack, key)


@pytest.fixture(scope="module")
def ivig_case(stack):
    records = fresh("ivig_case", new_tag())
    key, alerts = settled(stack, records)
    return {"key": key, "records": records, "alerts": alerts}


def delivery(stack, alert_ids: list[str]) -> dict[str, dict]:
    """notify's own record of each alert (its Redis store), read-only."""
    import redis.asyncio as aioredis
    from neutrowatch.notify.store import delivery_view

    async def read():
        r = aioredis.from_url(stack["redis"])
        try:
            return await delivery_view(r, stack["prefix"], alert_ids)
        finally:
            await r.aclose()
    with ThreadPoolExecutor(1) as pool:  # playwright's sync API holds this thread's event loop
        return pool.submit(asyncio.run, read()).result(10)


# ----------------------------------------------------------------------------- the timeline page

def test_ivig_case_timeline_draws_every_count_infusion_and_alert(stack, ivig_case, page):
    key, records, alerts = ivig_case["key"], ivig_case["records"], ivig_case["alerts"]
    want = expected_from_scenario(records)
    marked = drawn_alerts(alerts)
    assert want["ivig"] >= 6 and marked and any(a["kind"] == "post_ivig_neutropenia_pattern" for a in marked)

    response = page.open(f"/patients/{q(key)}")
    assert response.status == 200
    assert "'self'" in response.headers["content-security-policy"]
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert page.page.get_attribute("body", "data-ready") == "true", page.page.inner_text("#load-error")

    counts = page.page.evaluate("window.neutrowatchCounts")
    canvas = page.page.locator("#anc-chart")
    assert counts["ancPoints"] == want["anc"] == int(canvas.get_attribute("data-anc-points"))
    assert counts["ivigMarkers"] == counts["ivigLines"] == want["ivig"]
    assert int(canvas.get_attribute("data-ivig-markers")) == want["ivig"]
    assert counts["alertAnnotations"] == len(marked) == int(canvas.get_attribute("data-alert-annotations"))
    assert counts["criticalAlerts"] == sum(a["severity"] == "critical" for a in marked)
    assert counts["drugMarkers"] == want["drugs"] == 0

    # the axis is logarithmic and the bands are the engine's own limits for this patient
    chart = page.page.evaluate("""() => { const c = window.neutrowatchChart;
        return {type: c.scales.y.type, bands: Object.fromEntries(Object.entries(c.options.plugins.annotation.annotations)
                 .filter(([k]) => k.startsWith('band-0-')).map(([k, a]) => [k.slice(7), [a.yMin, a.yMax]]))}; }""")
    assert chart["type"] == "logarithmic"
    profile = DetectionConfig().profile_for(key)
    assert set(chart["bands"]) == set(GRADES)
    assert chart["bands"]["mild"] == [profile.mild, profile.normal]
    assert chart["bands"]["moderate"] == [profile.moderate, profile.mild]
    assert chart["bands"]["severe"] == [profile.agranulocytosis, profile.moderate]
    assert chart["bands"]["normal"][0] == profile.normal and chart["bands"]["agranulocytosis"][1] == profile.agranulocytosis

    # hover: an IVIG marker shows its dose, an alert marker its kind, severity and summary
    ivig_title = hover(page, "IVIG infusion", 0)
    assert "IVIG infusion" in ivig_title["title"] and "1 g/kg" in ivig_title["title"]
    pattern = next(a for a in marked if a["kind"] == "post_ivig_neutropenia_pattern")
    tip = hover_alert(page, pattern["alert_id"])
    assert "Post-IVIG neutropenia pattern" in tip["title"] and "Warning" in tip["title"]
    assert " ".join(tip["body"]).startswith(pattern["summary"][:40])

    # the panels: one IVIG course row per infusion, every alert listed
    assert page.page.locator("#ivig-table tbody tr").count() == want["ivig"]
    assert page.page.locator("#patient-alerts tbody tr").count() == len(alerts)
    patterns = [li.inner_text() for li in page.page.locator("#patterns li").all()]
    assert sorted(p.split(" WARNING")[0] for p in patterns) == ["Chronic neutropenia", "Post-IVIG neutropenia pattern"]
    page.page.screenshot(path=str(SHOTS / "neutrowatch-patient-ivig.png"), full_page=True)
    page.page.locator("section.card").first.screenshot(path=str(SHOTS / "neutrowatch-patient-ivig-chart.png"))
    assert page.console_errors == [] and page.page_errors == []


def hover(page: Page, dataset: str, index: int) -> dict:
    """Move the mouse onto a drawn point; the tooltip's title and body lines."""
    where = page.page.evaluate("""([label, i]) => { const c = window.neutrowatchChart;
        const d = c.data.datasets.findIndex(s => s.label === label);
        const p = c.getDatasetMeta(d).data[i]; return {x: p.x, y: p.y}; }""", [dataset, index])
    box = page.page.locator("#anc-chart").bounding_box()
    page.page.mouse.move(box["x"] + where["x"], box["y"] + where["y"])
    page.page.wait_for_function("window.neutrowatchChart.tooltip.opacity > 0")
    return page.page.evaluate("""() => { const t = window.neutrowatchChart.tooltip;
        return {title: t.title.join(' '), body: t.body.flatMap(b => b.lines)}; }""")


def hover_alert(page: Page, alert_id: str) -> dict:
    found = page.page.evaluate("""(id) => { const c = window.neutrowatchChart;
        for (const [d, s] of c.data.datasets.entries()) { const i = s.data.findIndex(p => p.alert && p.alert.alert_id === id);
          if (i >= 0) return [s.label, i]; } return null; }""", alert_id)
    assert found, "the alert has no marker"
    return hover(page, *found)


def test_ivig_doses_given_as_a_mass_are_shown_as_given(stack, page):
    # the IVIG case as a hospital that records the total mass (70 g) rather than 1 g/kg
    records = fresh("ivig_case", new_tag())
    for r in records:
        if r.get("dose"):
            r["dose"] = {"value": 70, "unit": "g", "mg": 70000}
    key, _ = settled(stack, records)
    page.open(f"/patients/{q(key)}")
    assert page.page.get_attribute("body", "data-ready") == "true", page.page.inner_text("#load-error")
    doses = page.page.locator("#ivig-table tbody tr td:nth-child(2)").all_inner_texts()
    assert doses and set(doses) == {"70 g"}
    assert hover(page, "IVIG infusion", 0)["title"].endswith("IVIG infusion · 70 g")
    assert page.console_errors == [] and page.page_errors == []


def test_a_count_reported_as_below_a_figure_reads_so(stack, page):
    # the lab reported the patient's latest count as "<0.1 x10^3/uL": agranulocytosis, "<100"
    records = fresh("ivig_case", new_tag())
    latest = max((r for r in records if r.get("analyte") == "anc"), key=lambda r: r["collected_at"])
    latest.update(value=100.0, comparator="<")
    key, _ = settled(stack, records)
    page.open(f"/patients/{q(key)}")
    assert page.page.get_attribute("body", "data-ready") == "true", page.page.inner_text("#load-error")
    assert page.page.inner_text("#last-anc").startswith("<100 cells/µL")
    assert page.console_errors == [] and page.page_errors == []


def test_temperatures_and_watched_drugs_are_drawn(stack, page):
    for scenario in ("febrile", "drug_induced"):
        records = fresh(scenario, new_tag())
        key, alerts = settled(stack, records)
        timeline = get(stack, f"/patients/{q(key)}/anc")[1]
        page.open(f"/patients/{q(key)}")
        assert page.page.get_attribute("body", "data-ready") == "true"
        counts = page.page.evaluate("window.neutrowatchCounts")
        want = expected_from_scenario(records)
        assert counts["ancPoints"] == want["anc"] and counts["drugMarkers"] == counts["drugLines"] == want["drugs"]
        assert counts["alertAnnotations"] == len(drawn_alerts(alerts))
        temps = sum(r["analyte"] == "body_temperature" for r in records if r["schema"].endswith("lab-result.v1"))
        if temps:
            assert len(timeline["temperatures"]) == temps
            assert page.page.get_attribute("#temp-chart", "data-temperature-points") == str(temps)
        else:
            assert page.page.locator("#temp-empty").is_visible()
        page.page.screenshot(path=str(SHOTS / f"neutrowatch-patient-{scenario}.png"), full_page=True)
    assert page.console_errors == [] and page.page_errors == []


def test_unknown_patient_is_a_404_page(stack, page):
    response = page.page.goto(stack["url"] + "/patients/" + q("NOPE|" + uuid.uuid4().hex))
    assert response.status == 404 and "Unknown patient" in page.page.inner_text("h1")


# ----------------------------------------------------------------------------- the alerts page

def test_acknowledging_a_critical_alert_from_the_alerts_page(stack, ivig_case, page):
    criticals = [a for a in drawn_alerts(ivig_case["alerts"]) if a["severity"] == "critical"]
    assert criticals
    target = criticals[0]["alert_id"]
    hook = stack["hook"]
    assert wait_until(lambda: hook.about(target), 30), "the critical alert never reached the ward board"
    assert wait_until(lambda: delivery(stack, [target])[target]["sent"], 10)

    page.open("/alerts?severity=critical&limit=500")
    row = page.page.locator(f'tr[data-alert-id="{target}"]')
    assert row.count() == 1
    assert row.get_attribute("data-state") in ("sent", "escalated")
    assert row.locator("a").get_attribute("href") == "/patients/" + q(ivig_case["key"])
    assert API_TOKEN not in page.page.content()

    # a wrong token: a clear error, nothing acknowledged
    page.page.fill("#ack-by", "Dr Test")
    page.page.fill("#ack-token", "not-the-token")
    page.page.click("#token-form button[type=submit]")
    row.locator("button.ack").click()
    page.page.wait_for_selector("#ack-message.error")
    assert "refused the API token" in page.page.inner_text("#ack-message")
    assert row.get_attribute("data-state") != "acknowledged"
    assert delivery(stack, [target])[target]["acknowledged"] is None
    assert page.page.locator("#token-form").is_visible()  # asks for the token again

    # the right token: the row turns acknowledged, notify's store agrees
    page.page.fill("#ack-token", API_TOKEN)
    page.page.click("#token-form button[type=submit]")
    assert page.page.evaluate("sessionStorage.getItem('neutrowatch.apiToken')") == API_TOKEN
    row.locator("button.ack").click()
    page.page.wait_for_selector(f'tr[data-alert-id="{target}"][data-state="acknowledged"]')
    assert "by Dr Test" in row.locator("td.delivery").inner_text()
    assert row.locator("button.ack").count() == 0
    ack = delivery(stack, [target])[target]["acknowledged"]
    assert ack and ack["by"] == "Dr Test" and ack["via"] == "api"
    assert get(stack, f"/alerts/{target}")[0] == 200
    page.page.screenshot(path=str(SHOTS / "neutrowatch-alerts.png"), full_page=True)

    # the patient page links to the patient's alerts with their delivery state
    page.open(f"/patients/{q(ivig_case['key'])}")
    page.page.click("text=Delivery and acknowledgement")
    page.page.wait_for_selector("body[data-ready]")
    listed = page.page.locator("#alerts-table tbody tr")
    assert listed.count() == sum(a["kind"] != "alert_retracted" for a in ivig_case["alerts"])  # withdrawn ones too
    assert page.page.locator(f'tr[data-alert-id="{target}"]').get_attribute("data-state") == "acknowledged"

    # after a reload: gone from the open list, shown as acknowledged under "all"
    page.open("/alerts?severity=critical&limit=500")
    assert page.page.locator(f'tr[data-alert-id="{target}"]').count() == 0
    page.open("/alerts?show=all&severity=critical&limit=500")
    again = page.page.locator(f'tr[data-alert-id="{target}"]')
    assert again.get_attribute("data-state") == "acknowledged" and "Dr Test" in again.inner_text()
    assert page.page_errors == []
    assert all("401" in e for e in page.console_errors), page.console_errors  # only the refused token


def test_alerts_stay_json_for_api_clients_and_static_files_are_typed(stack, ivig_case):
    for accept in (None, "application/json", "*/*", "application/json, text/html;q=0.5"):
        request = urllib.request.Request(stack["url"] + "/alerts?limit=2", headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.headers["Content-Type"].startswith("application/json")
            assert json.loads(r.read())["count"] <= 2
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    with urllib.request.urlopen(urllib.request.Request(stack["url"] + "/alerts", headers={"Accept": browser_accept}),
                                timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/html")
        assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
        html = r.read().decode()
        assert "<script>" not in html and " style=" not in html  # nothing inline
    for path, kind in (("/static/vendor/chart.umd.min.js", "text/javascript"), ("/static/js/patient.js", "text/javascript"),
                       ("/static/css/neutrowatch.css", "text/css")):
        with urllib.request.urlopen(stack["url"] + path, timeout=10) as r:
            assert r.headers["Content-Type"].startswith(kind) and r.headers["X-Content-Type-Options"] == "nosniff"
    assert get(stack, "/static/../pyproject.toml")[0] == 404
    assert get(stack, "/static/templates/layout.html")[0] == 404
    doc = get(stack, "/openapi.json")[1]
    assert "text/html" in doc["paths"]["/alerts"]["get"]["responses"]["200"]["content"]
    assert "/patients/{patient}" in doc["paths"]
    timeline = get(stack, f"/patients/{q(ivig_case['key'])}/anc")[1]
    assert set(doc["components"]["schemas"]["AncTimeline"]["required"]) <= set(timeline)
