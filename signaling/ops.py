"""Operational endpoints: /healthz (alive), /readyz (can serve), /metrics (Prometheus), the
last optionally behind a bearer token or on a listener of its own."""

from __future__ import annotations

import hmac

from aiohttp import hdrs, web

from signaling.appkeys import LIFECYCLE, METRICS, RECORDING_CONTROL, SERVICE, SETTINGS
from signaling.core.errors import Unauthorized


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[LIFECYCLE].shutting_down:
        return web.json_response({"status": "shutting_down"}, status=503)
    service = request.app[SERVICE]
    try:
        await service.store.ping()
        await service.bus.ping()
    except Exception:
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ready"})


def _metrics_token_given(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    given = given.strip() if scheme.lower() == "bearer" else ""
    return hmac.compare_digest(given.encode(), token.encode())


async def metrics(request: web.Request) -> web.Response:
    token = request.app[SETTINGS].metrics_token
    if token and not _metrics_token_given(request, token):
        error = Unauthorized("A valid metrics token is required.")
        return web.json_response(
            {"code": error.code, "message": error.message},
            status=error.http_status,
            headers={hdrs.WWW_AUTHENTICATE: "Bearer"},
        )
    service = request.app[SERVICE]
    stats = await service.store.stats()
    return web.Response(
        text=request.app[METRICS].render(stats, request.app[RECORDING_CONTROL].load),
        content_type="text/plain",
        charset="utf-8",
    )


def add_routes(app: web.Application, *, with_metrics: bool = True) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if with_metrics:
        app.router.add_get("/metrics", metrics)


def metrics_app(main: web.Application) -> web.Application:
    """An application serving only /metrics, with the figures of `main`: for a listener of
    its own (--metrics-host, --metrics-port) that the public proxy never reaches."""
    app = web.Application()
    app[SETTINGS] = main[SETTINGS]
    app[SERVICE] = main[SERVICE]
    app[METRICS] = main[METRICS]
    app[RECORDING_CONTROL] = main[RECORDING_CONTROL]
    app.router.add_get("/metrics", metrics)
    return app
