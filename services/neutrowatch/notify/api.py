"""HTTP routes of notify on the shared aiohttp app: acknowledgements and silences.

POST /alerts/{id}/ack (bearer)          {"by": "...", "note": "..."}
GET  /ack?token=...                     a page with one button (link scanners only GET: they never ack)
POST /ack                               form field token (the button), optional by
POST /silences (bearer)                 {"matchers": {"patient_key": ["H|1"]}, "ends_at": ISO | "duration": "2h",
                                         "created_by": "...", "comment": "..."}
GET  /silences (bearer)                 active silences
DELETE /silences/{id} (bearer)
"""
from __future__ import annotations

import html
import hmac
import re
import uuid
from typing import TYPE_CHECKING

from aiohttp import web

from neutrowatch.notify import messages, routing
from neutrowatch.notify.decisions import Silence, parse_time
from neutrowatch.notify.store import silence_dict

if TYPE_CHECKING:
    from neutrowatch.notify.service import NotifyService

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)?$")


class NotifyApi:
    def __init__(self, service: "NotifyService"):
        self.svc = service

    def routes(self) -> list:
        return [web.post("/alerts/{alert_id}/ack", self.ack), web.get("/ack", self.ack_page),
                web.post("/ack", self.ack_link), web.post("/silences", self.add_silence),
                web.get("/silences", self.list_silences), web.delete("/silences/{silence_id}", self.delete_silence)]

    def _authorised(self, request: web.Request) -> None:
        token = self.svc.s.notify_api_token
        if token is None:
            raise web.HTTPServiceUnavailable(text='{"error": "no API token configured"}',
                                             content_type="application/json")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode("utf-8", "surrogatepass"),  # any bytes a client sends
                                   f"Bearer {token.get_secret_value()}".encode()):
            raise web.HTTPUnauthorized(text='{"error": "bearer token required"}', content_type="application/json",
                                       headers={"WWW-Authenticate": "Bearer"})

    async def _json(self, request: web.Request) -> dict:
        try:
            body = await request.json() if request.can_read_body else {}
        except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
            raise web.HTTPBadRequest(text='{"error": "body is not JSON"}', content_type="application/json")
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
        return body

    async def ack(self, request: web.Request) -> web.Response:
        self._authorised(request)
        body = await self._json(request)
        by = body.get("by")
        if not isinstance(by, str) or not by.strip():
            return web.json_response({"error": "'by' (who acknowledges) is required"}, status=422)
        status, result = await self.svc.acknowledge(request.match_info["alert_id"], by.strip(),
                                                    body.get("note"), "api")
        return web.json_response(result, status=status)

    async def ack_page(self, request: web.Request) -> web.Response:
        token = request.query.get("token", "")
        try:
            alert_id, _ = messages.verify_ack(self.svc.ack_secret, token, self.svc.clock())
        except messages.InvalidToken as exc:
            return web.Response(status=403, text=f"This acknowledgement link is not valid ({exc}).")
        page = (f"<!doctype html><title>Acknowledge alert</title><h1>Acknowledge NeutroWatch alert</h1>"
                f"<p>Alert {html.escape(alert_id)}</p><form method=post action=ack>"
                f"<input type=hidden name=token value=\"{html.escape(token)}\">"
                f"<label>Your name <input name=by></label> <button type=submit>Acknowledge</button></form>")
        return web.Response(text=page, content_type="text/html")

    async def ack_link(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            alert_id, receiver = messages.verify_ack(self.svc.ack_secret, str(form.get("token", "")), self.svc.clock())
        except messages.InvalidToken as exc:
            return web.json_response({"error": f"invalid ack link: {exc}"}, status=403)
        by = str(form.get("by") or "").strip() or f"link:{receiver}"
        status, result = await self.svc.acknowledge(alert_id, by, None, "link")
        return web.json_response(result, status=status)

    async def add_silence(self, request: web.Request) -> web.Response:
        self._authorised(request)
        body = await self._json(request)
        now = self.svc.clock()
        matchers = body.get("matchers")
        if not isinstance(matchers, dict) or not matchers:
            return web.json_response({"error": "'matchers' must be a non-empty object"}, status=422)
        parsed = []
        for name, values in matchers.items():
            values = [values] if isinstance(values, str) else values
            if name not in routing.MATCH_FIELDS or not isinstance(values, list) or not values \
                    or not all(isinstance(v, str) for v in values):
                return web.json_response({"error": f"matchers.{name}: a field of {list(routing.MATCH_FIELDS)} "
                                                   "with a string or list of strings"}, status=422)
            parsed.append((name, frozenset(values)))
        try:
            if "ends_at" in body:
                ends = parse_time(str(body["ends_at"]))
            else:
                m = _DURATION.match(str(body.get("duration", "")))
                if not m:
                    raise ValueError
                ends = now + float(m.group(1)) * {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        except ValueError:
            return web.json_response({"error": "give 'ends_at' (ISO 8601) or 'duration' (e.g. 90s, 2h)"}, status=422)
        if ends <= now:
            return web.json_response({"error": "the silence would already have ended"}, status=422)
        silence = Silence(uuid.uuid4().hex, tuple(sorted(parsed)), ends, now, str(body.get("created_by", "")),
                          str(body.get("comment", "")))
        await self.svc.store.put_silence(silence)
        return web.json_response(silence_dict(silence), status=201)

    async def list_silences(self, request: web.Request) -> web.Response:
        self._authorised(request)
        now = self.svc.clock()
        return web.json_response([silence_dict(s) for s in await self.svc.store.silences() if s.active(now)])

    async def delete_silence(self, request: web.Request) -> web.Response:
        self._authorised(request)
        if await self.svc.store.delete_silence(request.match_info["silence_id"]):
            return web.Response(status=204)
        return web.json_response({"error": "unknown silence"}, status=404)
