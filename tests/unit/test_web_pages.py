"""The pages' server side without servers: content negotiation on GET /alerts (JSON stays the
default), delivery states, templates escape, static files are typed and confined, and the
timeline JSON carries the engine's limits, administrations, temperatures and IVIG courses."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from neutrowatch.detection import DetectionConfig, PatientState, step
from neutrowatch.domain.events import event_from_record
from neutrowatch.monitor.api import MonitorApi, prefers_html
from neutrowatch.monitor.state_store import Loaded
from neutrowatch.monitor.views import timeline
from neutrowatch import web as pages
from neutrowatch.web.assets import render
from neutrowatch.web.delivery import delivery

SCENARIOS = Path(__file__).parents[1] / "scenarios"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
ALERT = {"schema": "neutrowatch.alert.v1", "alert_id": "a" * 32, "patient_id": "p<1>", "patient_key": "H|p<1>",
         "kind": "severe_neutropenia", "severity": "critical", "observed_at": "2026-03-01T08:00:00Z",
         "summary": "Severe <b>neutropenia</b>", "evidence": {"rule": "severe_neutropenia"}}


class FakeRedis:
    """Answers notify's delivery_view reads as an empty store would."""

    def pipeline(self, transaction=False):
        calls = []

        class Pipe:
            def __getattr__(self, name):
                return lambda *args: calls.append(name)

            async def execute(self):
                return [{} if c in ("hgetall",) else 0 for c in calls]
        return Pipe()


class FakeStore:
    """The two index reads the alert listing uses, and an empty patient."""

    def __init__(self, alerts):
        self.alerts = alerts

    async def index_page(self, index, since, offset, count):
        return [a["alert_id"] for a in self.alerts][offset:offset + count]

    async def alerts_by_ids(self, ids):
        return [next(a for a in self.alerts if a["alert_id"] == i) for i in ids]

    async def load(self, key):
        return Loaded(key, PatientState.empty())


def serve(coro_fn, alerts=(ALERT,)):
    async def main():
        api = MonitorApi(FakeStore(list(alerts)), DetectionConfig())
        app = web.Application()
        app.add_routes(api.routes())
        pages.register(app, api, FakeRedis(), SimpleNamespace(notify_routing_file=None, notify_redis_prefix="nw:notify"))
        async with TestClient(TestServer(app)) as client:
            return await coro_fn(client)
    return asyncio.run(main())


def test_accept_header_decides_html_only_when_html_ranks_above_json():
    assert prefers_html(BROWSER)
    assert prefers_html("text/html")
    for accept in ("", "*/*", "application/json", "application/json, text/html;q=0.5", "text/html;q=0.5, application/json",
                   "text/html;q=0, */*"):
        assert not prefers_html(accept), accept


def test_alerts_answer_json_to_api_clients_and_html_to_browsers():
    async def check(client):
        for accept in (None, "application/json", "*/*"):
            r = await client.get("/alerts", headers={"Accept": accept} if accept else {})
            assert r.status == 200 and r.content_type == "application/json" and r.headers["Vary"] == "Accept"
            assert (await r.json())["alerts"] == [ALERT]
        r = await client.get("/alerts", headers={"Accept": BROWSER})
        text = await r.text()
        assert r.status == 200 and r.content_type == "text/html"
        assert r.headers["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'")
        assert "Severe &lt;b&gt;neutropenia&lt;/b&gt;" in text and "<b>neutropenia" not in text  # escaped
        assert 'href="/patients/H%7Cp%3C1%3E"' in text
        assert 'data-state="not_tracked"' in text and "button" not in text.split("<tbody>")[1]  # no notify: no ack
        assert (await client.get("/alerts?show=bogus", headers={"Accept": BROWSER})).status == 400
        assert (await client.get("/alerts?kind=bogus")).status == 400  # JSON validation unchanged
        r = await client.get("/patients/H%7Cnobody")
        assert r.status == 404 and "Unknown patient" in await r.text()
    serve(check)


def test_static_files_are_typed_and_confined():
    async def check(client):
        r = await client.get("/static/vendor/chart.umd.min.js")
        assert r.status == 200 and r.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert r.headers["X-Content-Type-Options"] == "nosniff" and "'self'" in r.headers["Content-Security-Policy"]
        assert (await client.get("/static/css/neutrowatch.css")).headers["Content-Type"].startswith("text/css")
        for bad in ("/static/%2e%2e/assets.py", "/static/..%2fassets.py", "/static/vendor/../../assets.py",
                    "/static/nothing.js", "/static/js"):
            assert (await client.get(bad)).status == 404, bad
    serve(check)


def test_delivery_state_is_the_most_decisive_fact():
    sent = [{"receiver": "mail", "purpose": "alert", "level": 0, "at": 1700000000.0}]
    esc = sent + [{"receiver": "pager", "purpose": "escalation", "level": 1, "at": 1700000300.0}]
    base = {"known": True, "sent": [], "pending": 0, "acknowledged": None, "retracted": False}
    ack = {"by": "Dr A", "at": "2023-11-14T22:20:00Z", "via": "api"}
    assert delivery({**base, "known": False}, False, notify_here=False).state == "not_tracked"
    assert delivery({**base, "known": False}, False).state == "waiting"
    assert delivery({**base, "pending": 1}, False).state == "scheduled"
    assert delivery(base, False).state == "not_sent"
    d = delivery({**base, "sent": sent}, False)
    assert d.state == "sent" and d.detail == "to mail at" and d.at == "2023-11-14T22:13:20Z" and d.can_ack and d.open
    assert delivery({**base, "sent": esc}, False).detail == "sent to mail; level 1 to pager at"
    d = delivery({**base, "sent": esc, "acknowledged": ack}, False)
    assert d.state == "acknowledged" and d.detail == "by Dr A at" and not d.open
    assert delivery({**base, "sent": esc, "acknowledged": ack}, True).state == "retracted"
    assert delivery({**base, "retracted": True}, False).state == "retracted"


def test_templates_escape_values():
    assert render("time.html", iso='"><script>', text="<x>") == '<time datetime="&quot;&gt;&lt;script&gt;">&lt;x&gt;</time>\n'


def test_timeline_carries_the_engine_limits_infusions_and_courses():
    config = DetectionConfig()
    state = PatientState.empty()
    records = [json.loads(line) for line in (SCENARIOS / "ivig_case.ndjson").read_text().splitlines()]
    for rec in records:
        state, _ = step(state, event_from_record(rec), config)
    body = timeline(state, {}, config)
    us = config.profile_for(state.patient_key)
    assert [(s["from"], s["to"], s["normal"], s["mild"], s["moderate"], s["agranulocytosis"])
            for s in body["grade_limits"]] == [(None, None, us.normal, us.mild, us.moderate, us.agranulocytosis)]
    ivig = [r for r in records if r.get("drug_class") == "ivig"]
    assert [a["administration_id"] for a in body["administrations"]] == [r["administration_id"] for r in ivig]
    assert all(a["role"] == "ivig" and a["dose_mg_per_kg"] == 1000 for a in body["administrations"])
    assert len(body["anc"]) == sum(r.get("analyte") == "anc" for r in records)
    assert body["temperatures"] == [] and body["fever_c"]["single"] == config.febrile_single_c
    first = body["ivig_courses"][0]  # cycle 1 of the case report: pre 800, 24 h 400, nadir 300 on day 8
    assert (first["pre"]["value"], first["early"]["value"], first["nadir"]["value"], first["dip"]) == (800, 400, 300, True)
    assert round(first["nadir"]["days_after_start"]) == 8 and len(body["ivig_courses"]) == len(ivig)
