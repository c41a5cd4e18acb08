"""A server killed mid-recording: what is on disk still plays, and the next start closes it.

The server is the real `sessionroom serve` process; the participants are aiortc peers in
this process.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from signaling.core.model import RecordingMode, Role, RoomSettings
from tests.integration.recording_peers import (
    Leg,
    Started,
    answer_leg,
    decode,
    open_leg,
    record_everyone,
)
from tests.server_process import SESSIONROOM, Server
from tests.support import Peer, make_keys, mint

pytestmark = pytest.mark.network

CONSENT = RoomSettings(recording=RecordingMode.CONSENT)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    s = Server(tmp_path)
    await s.start()
    try:
        yield s
    finally:
        if s.proc is not None and s.proc.returncode is None:
            s.proc.kill()
            await s.proc.wait()


async def _join(http: aiohttp.ClientSession, server: Server, role: Role, name: str) -> Peer:
    token = mint(make_keys(), "killed", role, name, settings=CONSENT)
    peer = Peer(await http.ws_connect(f"{server.url}/ws"))
    await peer.send(type="join", token=token)
    peer.joined = await peer.expect("joined")
    return peer


async def _record_then(
    server: Server, seconds: float, stop: Callable[[], Awaitable[None]]
) -> tuple[Started, Peer, Peer, float]:
    """Record a therapist and a client for `seconds`, then `stop` the server; returns when
    it stopped, on the recording's timeline."""
    legs: list[Leg] = []
    async with aiohttp.ClientSession() as http:
        therapist = await _join(http, server, Role.THERAPIST, "Dr Sam")
        client = await _join(http, server, Role.CLIENT, "Alex")
        await therapist.expect("lobby")
        await therapist.send(type="admit", participant=client.id)
        await client.expect("admitted")
        started = await record_everyone(therapist, client)
        try:
            for peer in (therapist, client):
                legs.append(await open_leg(peer, started.recording))
            for peer, leg in zip((therapist, client), legs, strict=True):
                await answer_leg(peer, leg)
            await asyncio.sleep(seconds)
            stopped_at = time.time() - started.at
            await stop()
        finally:
            await asyncio.gather(*(leg.close() for leg in legs))
    return started, therapist, client, stopped_at


async def test_a_killed_server_leaves_playable_files(server: Server) -> None:
    started, therapist, client, killed_at = await _record_then(server, 6, server.kill)

    folder = server.recordings / started.recording
    parts = sorted((folder / "parts").iterdir())
    assert [p.name for p in parts] == sorted(
        f"{pid}.{kind}.webm" for pid in (therapist.id, client.id) for kind in ("audio", "video")
    )
    for part in parts:
        decoded = decode(part)
        assert decoded.last >= killed_at - 2.0, (part.name, decoded, killed_at)

    # The next start finds the recording still open: it merges the parts and closes it.
    await server.start()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["stop_reason"] == "interrupted"
    assert {f["participant"] for f in manifest["files"]} == {therapist.id, client.id}
    for info in manifest["files"]:
        decoded = decode(folder / info["name"])
        assert decoded.kinds == {"audio", "video"}
        assert decoded.last >= killed_at - 2.0, (info["name"], decoded, killed_at)
    assert [e["event"] for e in manifest["ledger"]][-2:] == ["started", "stopped"]
    assert manifest["ledger"][-1]["reason"] == "interrupted"
    await server.stop()

    proc = await asyncio.create_subprocess_exec(
        *SESSIONROOM, "recordings", "verify", started.recording, env=server.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, (out.decode(), err.decode())


async def test_stopping_the_server_closes_the_recording(server: Server) -> None:
    started, therapist, client, stopped_at = await _record_then(server, 3, server.stop)
    folder = server.recordings / started.recording
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["stop_reason"] == "server_stopped"
    assert {f["participant"] for f in manifest["files"]} == {therapist.id, client.id}
    for info in manifest["files"]:
        decoded = decode(folder / info["name"])
        assert decoded.kinds == {"audio", "video"}
        assert stopped_at - 1.0 <= decoded.last <= stopped_at + 1.0, (decoded, stopped_at)
    assert manifest["ledger"][-1]["reason"] == "server_stopped"
