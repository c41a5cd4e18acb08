"""Operational endpoints: /healthz (alive), /readyz (can serve), /metrics (Prometheus)."""

from __future__ import annotations

from aiohttp import web

from recordings.service import RecordingLoad
from signaling.appkeys import LIFECYCLE, METRICS, SERVICE


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


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    stats = await service.store.stats()
    recording = service.recordings.load if service.recordings else RecordingLoad(0, 0)
    return web.Response(
        text=request.app[METRICS].render(stats, recording),
        content_type="text/plain",
        charset="utf-8",
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
