"""GET /alerts for browsers: the newest alerts with their delivery state (notify's store) and an
Acknowledge button that calls POST /alerts/{id}/ack with the token the user typed (static/js/alerts.js).

Query: show=open (default: neither acknowledged nor retracted) | all; severity=critical|warning|info;
patient (a patient_key); limit (how many of the newest alerts to look at, default 200). Sorted
critical first, then newest."""
from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from aiohttp import web

from neutrowatch.notify.store import delivery_view
from neutrowatch.web import labels
from neutrowatch.web.assets import Safe, page, render
from neutrowatch.web.delivery import Delivery, delivery, when

if TYPE_CHECKING:
    from neutrowatch.monitor.api import MonitorApi

SCRIPTS = ("js/alerts.js",)
SHOW = ("open", "all")


class AlertsPage:
    def __init__(self, api: "MonitorApi", redis, notify_prefix: str, notify_here: bool):
        self.api, self.redis, self.prefix, self.notify_here = api, redis, notify_prefix, notify_here

    async def handle(self, request: web.Request) -> web.Response:
        q = request.query
        show, severity, patient = q.get("show", "open"), q.get("severity") or None, q.get("patient") or None
        try:
            limit = int(q.get("limit", "200"))
        except ValueError:
            limit = 0
        if show not in SHOW or severity not in (None, *labels.SEVERITY_RANK) or not 1 <= limit <= self.api.page_max:
            return page("Bad request", render("message.html", heading="Bad request", text=(
                f"show is open or all, severity critical, warning or info, limit 1..{self.api.page_max}.")),
                status=400)
        rows = await self.rows(severity, patient, limit)
        shown = [(a, d) for a, d in rows if show == "all" or d.open]
        body = render("alerts.html", filters=self.filters(show, severity, patient),
                      count=f"{len(shown)} {'open ' if show == 'open' else ''}alert{'' if len(shown) == 1 else 's'}"
                            f" of the newest {len(rows)}" + (f" for {patient}" if patient else ""),
                      rows=Safe("\n".join(row(a, d) for a, d in shown)) if shown else render("no_alerts.html"))
        return page("Alerts · NeutroWatch", body, SCRIPTS)

    async def rows(self, severity: str | None, patient: str | None,
                   limit: int) -> list[tuple[dict[str, Any], Delivery]]:
        found, _, _ = await self.api.find_alerts(patient, None, severity, None, limit, 0)
        notices, _, _ = await self.api.find_alerts(patient, "alert_retracted", None, None, self.api.page_max, 0)
        withdrawn = {n.get("retracts_alert_id") for n in notices}
        alerts = [a for a in found if a["kind"] != "alert_retracted"]
        views = await delivery_view(self.redis, self.prefix, [a["alert_id"] for a in alerts])
        out = [(a, delivery(views[a["alert_id"]], a["alert_id"] in withdrawn, self.notify_here)) for a in alerts]
        out.sort(key=lambda r: r[0]["observed_at"], reverse=True)
        out.sort(key=lambda r: labels.SEVERITY_RANK.get(r[0]["severity"], 9))
        return out

    @staticmethod
    def filters(show: str, severity: str | None, patient: str | None) -> Safe:
        def link(text: str, current: bool, **query: str | None) -> str:
            href = "/alerts?" + urllib.parse.urlencode({k: v for k, v in {**query, "patient": patient}.items() if v})
            return render("filter_link.html", href=href, text=text, current="true" if current else "false")
        shows = [link(t, show == s, show=s, severity=severity) for s, t in (("open", "Open"), ("all", "All"))]
        sevs = [link(t, severity == s, show=show, severity=s) for s, t in
                ((None, "Any severity"), ("critical", "Critical"), ("warning", "Warning"), ("info", "Info"))]
        return render("filters.html", shows=Safe("".join(shows)), severities=Safe("".join(sevs)))


def row(alert: dict[str, Any], d: Delivery) -> str:
    key = alert["patient_key"]
    action = render("ack_button.html", id=alert["alert_id"]) if d.can_ack and d.open else Safe("")
    at = render("time.html", iso=d.at, text=when(d.at)) if d.at else Safe("")
    return render("alert_row.html", id=alert["alert_id"], severity=alert["severity"], kind=alert["kind"],
                  kind_label=labels.kind(alert["kind"]), observed_at=alert["observed_at"],
                  observed=when(alert["observed_at"]), patient_key=key,
                  patient_href="/patients/" + urllib.parse.quote(key, safe=""), summary=alert.get("summary", ""),
                  state=d.state, state_label=labels.STATE.get(d.state, d.state), detail=d.detail, at=at, action=action)
