"""Serves the room page (`/join`, `/static/...`) and sets the security headers on every
response: a strict Content-Security-Policy with no inline script, no referrer, camera and
microphone for this origin only."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from aiohttp import web

from signaling.core.errors import SessionroomError

log = logging.getLogger("sessionroom.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "font-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'self'",
    ]
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": (
        "camera=(self), microphone=(self), speaker-selection=(self), display-capture=(), "
        "geolocation=(), payment=(), usb=()"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def web_root() -> Path:
    root = Path(str(files("web")))
    if not (root / "join.html").is_file():
        raise RuntimeError(f"The room page is missing from {root}.")
    return root


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as e:
        e.headers.update(SECURITY_HEADERS)
        raise
    except Exception:
        # Answered here rather than by aiohttp's default page, so that a 500 carries the
        # same headers, and the same JSON shape, as every other response.
        log.exception("request failed")
        response = web.json_response(
            {"code": SessionroomError.code, "message": SessionroomError.default_message},
            status=500,
            headers={"Cache-Control": "no-store"},
        )
    if not response.prepared:  # a WebSocket has already sent its headers
        response.headers.update(SECURITY_HEADERS)
    return response


def add_routes(app: web.Application) -> None:
    root = web_root()
    page = root / "join.html"

    async def join_page(request: web.Request) -> web.FileResponse:
        # The link's token is in the fragment, which browsers never send: nothing to log.
        return web.FileResponse(page, headers={"Cache-Control": "no-store"})

    async def index(request: web.Request) -> web.Response:
        return web.Response(
            text="Sessionroom. Open the link you were sent to join your session.\n",
            content_type="text/plain",
        )

    app.router.add_get("/join", join_page)
    app.router.add_get("/", index)
    app.router.add_static("/static/", root, name="static")
