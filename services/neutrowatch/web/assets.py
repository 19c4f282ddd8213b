"""Templates and static files of the pages, and the security headers every page carries."""
from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from string import Template

from aiohttp import web

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

# Only 'self': scripts and styles come from /static (no inline code), data only from this server.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".svg": "image/svg+xml", ".md": "text/plain; charset=utf-8"}


class Safe(str):
    """Markup already escaped (or built from escaped parts): inserted into a template as is."""


@cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render(name: str, **values: object) -> Safe:
    """A template file with ``$name`` placeholders; values are HTML-escaped unless Safe."""
    return Safe(_template(name).substitute(
        {k: v if isinstance(v, Safe) else html.escape(str(v), quote=True) for k, v in values.items()}))


def page(title: str, body: Safe, scripts: tuple[str, ...] = (), status: int = 200,
         data: dict[str, str] | None = None) -> web.Response:
    """The layout around ``body``; vendor scripts load deferred, the pages' own as modules (both
    run in document order); ``data`` becomes data-* attributes of <body> for the scripts."""
    tags = Safe("\n".join(f'<script {"defer" if s.startswith("vendor/") else "type=module"} '
                          f'src="/static/{html.escape(s)}"></script>' for s in scripts))
    attrs = Safe("".join(f' data-{k}="{html.escape(v, quote=True)}"' for k, v in (data or {}).items()))
    text = render("layout.html", title=title, body=body, scripts=tags, body_attrs=attrs)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store", "Vary": "Accept"})


async def static(request: web.Request) -> web.StreamResponse:
    """Files under static/ with an allowed extension, never outside it."""
    root = STATIC.resolve()
    path = (root / request.match_info["path"]).resolve()
    kind = CONTENT_TYPES.get(path.suffix)
    if kind is None or root not in path.parents or not path.is_file():
        raise web.HTTPNotFound(text="not found")
    return web.FileResponse(path, headers={**SECURITY_HEADERS, "Content-Type": kind, "Cache-Control": "no-cache"})
