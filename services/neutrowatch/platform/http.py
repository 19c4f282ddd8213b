"""The HTTP server every process shares: health, readiness, Prometheus metrics; services add
their own routes (FHIR ingest, the API)."""
from __future__ import annotations

from typing import Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from neutrowatch.platform.health import Readiness


def build_app(readiness: Readiness, max_body_bytes: int,
              extra_metrics: Sequence[Callable[[], Awaitable[bytes]]] = ()) -> web.Application:
    """``extra_metrics``: exposition text of child processes (e.g. the monitor worker) appended
    to this process's own metrics."""
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        checks = await readiness.report()
        ready = bool(checks) and all(checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def metrics(_request: web.Request) -> web.Response:
        await readiness.report()  # keeps neutrowatch_ready current on every scrape
        children = b"".join([await source() for source in extra_metrics])
        body = generate_latest(_Without(_family_names(children))) + children
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=max_body_bytes)
    app.add_routes([web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)])
    return app


class _Without:
    """This process's registry minus the families a child process reports: the child's values
    are the real ones, and Prometheus would keep only the first of two samples."""

    def __init__(self, names: set[str]):
        self.names = names

    def collect(self):
        return (m for m in REGISTRY.collect() if m.name not in self.names)


def _family_names(exposition: bytes) -> set[str]:
    names = set()
    for line in exposition.decode().splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            names |= {name, name.removesuffix("_total")}
    return names


class HttpServer:
    def __init__(self, app: web.Application, host: str, port: int):
        self._runner = web.AppRunner(app, access_log=None)
        self._host, self._port = host, port
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        assert self._site is not None
        return self._site._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()

    async def stop(self) -> None:
        await self._runner.cleanup()
