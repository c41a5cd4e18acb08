"""Deletes recordings older than `recordings_retention_days`: at start, then daily."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from signaling.appkeys import RECORDINGS, SERVICE, SETTINGS

log = logging.getLogger("sessionroom.recordings")

SWEEP_INTERVAL = 24 * 3600.0


async def retention(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context: the sweeping task runs while the app does."""
    days = app[SETTINGS].recordings_retention_days
    task = asyncio.create_task(_sweep_daily(app, days)) if days > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sweep_daily(app: web.Application, days: float) -> None:
    storage, clock = app[RECORDINGS], app[SERVICE].clock
    while True:
        try:
            deleted = await asyncio.to_thread(storage.sweep, now=clock(), older_than_days=days)
        except Exception:
            log.exception("the recordings retention sweep failed")
        else:
            for recording_id in deleted:
                log.info("recording deleted: past retention", extra={"recording": recording_id})
        await asyncio.sleep(SWEEP_INTERVAL)
