"""Retention: a node with `recordings_retention_days` deletes old recordings when it starts."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from recordings import retention
from signaling.app import create_app
from signaling.tokens import KeyRing
from tests.recording_fixtures import make_webm, storage_at, store_recording
from tests.support import make_settings

DAY = 86400.0


async def _until(condition: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not come true in time")


def _sweeps() -> list[asyncio.Task[Any]]:
    """The node's retention tasks that are running."""
    name = retention._sweep_daily.__qualname__
    return [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == name]


async def test_old_recordings_are_deleted_at_start(
    aiohttp_client: Any, keys: KeyRing, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "recordings"
    storage = storage_at(root)
    webm = make_webm(tmp_path / "source.webm")
    old = store_recording(storage, "r-1", webm=webm, started_at=time.time() - 10 * DAY)
    recent = store_recording(storage, "r-1", webm=webm, started_at=time.time() - DAY)
    caplog.set_level(logging.INFO, logger="sessionroom.recordings")
    settings = make_settings(recordings_dir=root, recordings_retention_days=7)
    await aiohttp_client(create_app(settings, keys))
    assert len(_sweeps()) == 1
    await _until(lambda: not (root / old.id).exists())
    assert (root / recent.id).exists()
    deleted = [e for e in storage.ledger.entries() if e.event == "deleted"]
    assert [(e.recording, e.reason) for e in deleted] == [(old.id, "retention")]
    logged = [r for r in caplog.records if getattr(r, "recording", None) == old.id]
    assert logged and "Person" not in logged[0].getMessage()


async def test_zero_days_keeps_everything(
    aiohttp_client: Any, keys: KeyRing, tmp_path: Path
) -> None:
    root = tmp_path / "recordings"
    storage = storage_at(root)
    old = store_recording(
        storage, "r-1", webm=make_webm(tmp_path / "s.webm"), started_at=time.time() - 900 * DAY
    )
    client = await aiohttp_client(create_app(make_settings(recordings_dir=root), keys))
    # No sweep runs at all (waiting a while could only show that none had deleted it yet).
    assert _sweeps() == []
    assert (root / old.id).exists()
    await client.close()
    assert (root / old.id).exists()
