"""HTTP API over the monitor's Redis (shares the ingest HTTP server): alerts and patients.

Patient ids in URLs are the patient_key (``authority|id``) URL-encoded: /patients/SCEN%7Cp1/anc.
Shapes are in openapi.py (served at /openapi.json)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

from aiohttp import web

from neutrowatch.detection import KINDS, SEVERITY, DetectionConfig
from neutrowatch.detection.engine import kept_ids
from neutrowatch.monitor import openapi, views
from neutrowatch.monitor.state_store import INDEX, StateStore, kind_index, severity_index

SEVERITIES = ("info", "warning", "critical")


class MonitorApi:
    def __init__(self, store: StateStore, config: DetectionConfig, page_size_max: int = 500):
        self.store, self.config, self.page_max = store, config, page_size_max
        # The HTML side of GET /alerts for browsers (set by neutrowatch.web.register); JSON stays the default.
        self.alerts_html: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/alerts", self.alerts), web.get("/alerts/{alert_id}", self.alert),
                web.get("/patients/{patient}/anc", self.anc), web.get("/patients/{patient}/state", self.state),
                web.get("/openapi.json", self.openapi)]

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi.document())

    async def alerts(self, request: web.Request) -> web.StreamResponse:
        if self.alerts_html is not None and prefers_html(request.headers.get("Accept", "")):
            return await self.alerts_html(request)
        response = await self._alerts_json(request)
        response.headers["Vary"] = "Accept"
        return response

    async def _alerts_json(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = int(q.get("limit", "50"))
            offset = int(q.get("offset", "0"))
            since = _since(q.get("since"))
        except ValueError as exc:
            return _problem(400, f"invalid query parameter: {exc}")
        if not 1 <= limit <= self.page_max or offset < 0:
            return _problem(400, f"limit must be 1..{self.page_max} and offset >= 0")
        kind, severity, patient = q.get("kind"), q.get("severity"), q.get("patient")
        if kind and kind not in KINDS:
            return _problem(400, f"unknown kind; one of {', '.join(KINDS)}")
        if severity and severity not in SEVERITIES:
            return _problem(400, "severity must be info, warning or critical")

        page, more, position = await self.find_alerts(patient, kind, severity, since, limit, offset)
        body: dict[str, Any] = {"alerts": page, "count": len(page), "offset": offset, "limit": limit}
        if more:
            body["next"] = str(request.rel_url.update_query({"offset": str(position), "limit": str(limit)}))
        return web.json_response(body)

    async def find_alerts(self, patient: str | None, kind: str | None, severity: str | None,
                          since: float | None, limit: int, offset: int) -> tuple[list[dict], bool, int]:
        """(alerts newest observed_at first, whether there are more, position to continue from)."""
        def keep(a: dict[str, Any]) -> bool:
            return ((not kind or a["kind"] == kind) and (not severity or a["severity"] == severity)
                    and (since is None or _epoch(a["observed_at"]) >= since))

        if patient:
            rows = sorted((a for a in await self.store.patient_alerts(patient) if keep(a)),
                          key=lambda a: (a["observed_at"], a["alert_id"]), reverse=True)
            page, more, position = rows[offset:offset + limit], len(rows) > offset + limit, offset + limit
        else:  # newest first from the narrowest index; the other criteria filter while paging
            index = kind_index(kind) if kind else severity_index(severity) if severity else INDEX
            page, position, more, chunk = [], offset, False, 200
            while not more:
                ids = await self.store.index_page(index, since, position, chunk)
                for alert in await self.store.alerts_by_ids(ids):
                    if alert is not None and keep(alert):
                        if len(page) == limit:
                            more = True
                            break
                        page.append(alert)
                    position += 1
                if len(ids) < chunk:
                    break
        return page, more, position

    async def alert(self, request: web.Request) -> web.Response:
        found = await self.store.alert(request.match_info["alert_id"])
        return web.json_response(found) if found else _problem(404, "no such alert")

    async def _loaded(self, request: web.Request):
        loaded = await self.store.load(request.match_info["patient"])
        return loaded if loaded.state.patient_key else None

    async def anc(self, request: web.Request) -> web.Response:
        loaded = await self._loaded(request)
        if loaded is None:
            return _problem(404, "no such patient")
        return web.json_response(views.timeline(loaded.state, loaded.meta, self.config))

    async def state(self, request: web.Request) -> web.Response:
        loaded = await self._loaded(request)
        if loaded is None:
            return _problem(404, "no such patient")
        sent = None
        if kept_ids(loaded.state):  # patterns whose evidence left the history: as they were sent
            sent = {a["alert_id"]: a for a in await self.store.patient_alerts(loaded.patient_key)}
        return web.json_response(views.patient_state(loaded.state, self.config, sent))


def prefers_html(accept: str) -> bool:
    """True when the Accept header ranks text/html above application/json (browsers do; API
    clients sending nothing, */* or application/json get JSON)."""
    def q(media: str) -> float:
        best = 0.0
        for part in accept.split(","):
            kind, *params = [p.strip() for p in part.split(";")]
            if kind.lower() == media:
                weight = 1.0
                for p in params:
                    if p.startswith("q="):
                        try:
                            weight = float(p[2:])
                        except ValueError:
                            weight = 0.0
                best = max(best, weight)
        return best
    return q("text/html") > q("application/json")


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"status": status, "detail": detail}, status=status)


def _since(text: str | None) -> float | None:
    if not text:
        return None
    return _epoch(text)


def _epoch(text: str) -> float:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


assert set(SEVERITY.values()) <= set(SEVERITIES)
