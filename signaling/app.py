"""The aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from media.ice import allow_loopback_candidates
from recordings import api as recordings_api
from recordings.control import RECOVER_QUIET_SECONDS, RecordingControl
from recordings.ledger import FileLedger
from recordings.retention import retention
from recordings.storage import LEDGER_FILE, RecordingStorage
from signaling import api, ops, webpage
from signaling.appkeys import (
    CLIENT_LIMITS,
    CONNECTIONS,
    LIFECYCLE,
    METRICS,
    RECORDING_CONTROL,
    RECORDINGS,
    SERVICE,
    SETTINGS,
    Closable,
    Lifecycle,
)
from signaling.backends import make_backends
from signaling.bus import RESUBSCRIBED
from signaling.client_limits import ClientLimits
from signaling.config import Settings
from signaling.liveness import liveness, take_over_own_leftovers
from signaling.metrics import Metrics
from signaling.openapi import API_PREFIX
from signaling.rooms import RoomService
from signaling.tokens import KeyRing
from signaling.ws import websocket_handler

log = logging.getLogger("sessionroom.app")

# How often the store forgets ended rooms and empty rooms that are past their time.
HOUSEKEEPING_INTERVAL = 600.0


def create_app(settings: Settings, keys: KeyRing) -> web.Application:
    metrics = Metrics()
    limits = ClientLimits.from_settings(settings, metrics)
    app = web.Application(
        middlewares=[
            webpage.security_headers,
            # Before the API key is checked: key guessing counts against the budget too.
            limits.rest_middleware(API_PREFIX),
            api.api_errors,
            api.api_key_auth,
        ]
    )
    store, bus = make_backends(settings)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[CLIENT_LIMITS] = limits
    app[CONNECTIONS] = set()
    app[LIFECYCLE] = Lifecycle()
    storage = RecordingStorage(
        settings.recordings_path, FileLedger(settings.recordings_path / LEDGER_FILE)
    )
    app[RECORDINGS] = storage
    if settings.ice_loopback:
        allow_loopback_candidates()
    app[RECORDING_CONTROL] = recordings = RecordingControl(
        storage,
        storage.ledger,
        to_nodes=bus.to_nodes,
        read_room=store.get,
        resubscribed_kind=RESUBSCRIBED,
        ice_servers=settings.ice_servers,
        turn=settings.turn,
        node_id=settings.node_id,
    )
    bus.on_node_message(recordings.node_message)
    app[SERVICE] = RoomService(
        store,
        bus,
        keys,
        grace_seconds=settings.grace_seconds,
        ice_servers=settings.ice_servers,
        turn=settings.turn,
        public_url=settings.public_url,
        recordings=recordings,
        recordings_where=settings.recordings_where,
        subscribers=(metrics,),
    )
    app.router.add_get("/ws", websocket_handler)
    api.add_routes(app, recordings_api.OPERATIONS)
    recordings_api.add_routes(app)
    # With a listener of its own (ops.metrics_app), /metrics is not on this one.
    ops.add_routes(app, with_metrics=not settings.metrics_port)
    webpage.add_routes(app)
    app.cleanup_ctx.append(_backends)
    app.cleanup_ctx.append(_housekeeping)
    app.cleanup_ctx.append(liveness)
    app.cleanup_ctx.append(retention)
    app.on_shutdown.append(_close_sockets)
    return app


async def _backends(app: web.Application) -> AsyncIterator[None]:
    service = app[SERVICE]
    await service.bus.start()
    log.info("node started", extra={"node": service.bus.node_id})
    await take_over_own_leftovers(service)
    # With one node, whatever is still open in the folder was this process's own.
    quiet = RECOVER_QUIET_SECONDS if app[SETTINGS].redis_url else 0.0
    await app[RECORDING_CONTROL].recover(quiet_seconds=quiet)
    yield
    await service.close()
    await service.bus.close()
    await service.store.close()


async def _housekeeping(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        service, settings, recordings = app[SERVICE], app[SETTINGS], app[RECORDING_CONTROL]
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            now = service.clock()
            cutoff = now - settings.room_retention_seconds
            try:
                await service.store.purge(ended_before=cutoff, idle_before=cutoff, now=now)
                # A node that died mid-recording left parts: close them here.
                await recordings.recover()
            except Exception:
                log.exception("housekeeping failed")

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    app[LIFECYCLE].shutting_down = True
    connections: set[Closable] = app[CONNECTIONS]
    log.info("shutting down", extra={"node": app[SERVICE].bus.node_id})
    await asyncio.gather(*(c.shutdown() for c in list(connections)), return_exceptions=True)
