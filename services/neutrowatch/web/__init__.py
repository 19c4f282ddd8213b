"""Browser pages on the shared HTTP server: a patient's timeline and the alerts list.

    register(app, api, redis, settings)   # after the monitor API's routes are on the app

GET /patients/{key}        the timeline page (data from the JSON API: /anc, /state, /alerts?patient=)
GET /alerts                the alerts page when the browser asks for text/html (JSON stays the default)
GET /static/...            the pages' own JS and CSS and the vendored chart library (static/vendor/README.md)

Every page and static file carries a Content-Security-Policy that allows only 'self': no inline
scripts or styles, no CDN. The pages hold no secret: the API token for acknowledging is typed by
the user and kept in the browser's sessionStorage. Nothing here logs patient identifiers."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from neutrowatch.web import assets
from neutrowatch.web.alerts_page import AlertsPage
from neutrowatch.web.patient_page import PatientPage

if TYPE_CHECKING:
    from neutrowatch.monitor.api import MonitorApi
    from neutrowatch.platform.settings import Settings


def register(app: web.Application, api: "MonitorApi", redis, settings: "Settings") -> None:
    # notify may run here (a routing file) or as its own service on the same Redis (docker-compose):
    # the delivery state is read from its store either way.
    alerts = AlertsPage(api, redis, settings.notify_redis_prefix, bool(settings.notify_routing_file))
    api.alerts_html = alerts.handle
    app.add_routes([web.get("/patients/{patient}", PatientPage(api).handle),
                    web.get("/static/{path:.+}", assets.static)])
