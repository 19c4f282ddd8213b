"""GET /patients/{key}: the patient's timeline page. The page itself holds only the key; its
script reads the JSON API (/patients/{key}/anc and /state, /alerts?patient=) and draws the chart."""
from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from aiohttp import web

from neutrowatch.web.assets import page, render

if TYPE_CHECKING:
    from neutrowatch.monitor.api import MonitorApi

SCRIPTS = ("vendor/chart.umd.min.js", "vendor/chartjs-adapter-date-fns.bundle.min.js",
           "vendor/chartjs-plugin-annotation.min.js", "js/patient.js")


class PatientPage:
    def __init__(self, api: "MonitorApi"):
        self.api = api

    async def handle(self, request: web.Request) -> web.Response:
        key = request.match_info["patient"]
        loaded = await self.api.store.load(key)
        if not loaded.state.patient_key:
            return page("Unknown patient", render("not_found.html", what="patient", key=key), status=404)
        alerts_href = "/alerts?" + urllib.parse.urlencode({"show": "all", "patient": key})
        return page(f"{key} · ANC timeline", render("patient.html", key=key, alerts_href=alerts_href), SCRIPTS,
                    data={"patient-key": key})
