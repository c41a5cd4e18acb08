"""Chat, lobby notices and denial messages never reach Redis's files in plaintext, and a chat
that cannot be delivered is told to its sender.

Two real nodes on a real redis-server of the test's own, with the append-only file on (as the
shipped docker-compose.yml runs it) and a SAVE for the snapshot: after a notice, a denial and
a chat each around a resume, every file Redis wrote is searched for each text.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from signaling.core.model import Role
from tests.integration.test_nodes import join, token, two_nodes
from tests.polling import eventually
from tests.redis_server import RedisServer
from tests.server_process import Server
from tests.support import Peer

pytestmark = pytest.mark.network

NOTICE = "NOTICE-" + secrets.token_hex(6)
DENIAL = "DENIAL-" + secrets.token_hex(6)
CHAT = "CHAT-" + secrets.token_hex(6)


@pytest.fixture
async def redis_on_disk(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", append_only=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def drop(peer: Peer) -> None:
    """The socket goes without `leave`, as when a phone loses its network."""
    await peer.ws.close()


async def until_lobby(therapist: Peer, check: Callable[[list[dict[str, Any]]], bool]) -> None:
    while not check((await therapist.expect("lobby"))["waiting"]):
        pass


async def resume(http: aiohttp.ClientSession, node: Server, peer: Peer) -> Peer:
    return await join(http, node, peer.link, resume=peer.joined["resume"])


def files_written(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


async def test_no_text_reaches_redis_files_in_plaintext(
    tmp_path: Path, redis_on_disk: RedisServer, http: aiohttp.ClientSession
) -> None:
    async with two_nodes(tmp_path, redis_on_disk) as (a, b):
        therapist = await join(http, a, token("sealed", Role.THERAPIST, "Dr Sam"))
        alex = await join(http, b, token("sealed", Role.CLIENT, "Alex"))
        blake = await join(http, b, token("sealed", Role.CLIENT, "Blake"))
        await until_lobby(therapist, lambda w: len(w) == 2)

        # A lobby notice while Alex's socket is away: kept for Alex, and in the room's state.
        await drop(alex)
        await until_lobby(therapist, lambda w: any(not x["connected"] for x in w))
        await therapist.send(type="lobby_notice", text=NOTICE)
        alex = await resume(http, a, alex)
        notice = await alex.expect("lobby_notice")
        assert notice["text"] == NOTICE
        assert alex.joined["notice"] == NOTICE  # read back from the room's (sealed) state

        # A denial while Blake's socket is away: Blake resuming is told the message.
        await drop(blake)
        await until_lobby(therapist, lambda w: any(x["id"] == blake.id and not x["connected"]
                                                   for x in w))  # fmt: skip
        await therapist.send(type="deny", participant=blake.id, message=DENIAL)
        await until_lobby(therapist, lambda w: all(x["id"] != blake.id for x in w))
        back = await http.ws_connect(f"{b.url}/ws")
        await back.send_str(
            json.dumps({"type": "join", "token": blake.link, "resume": blake.joined["resume"]})
        )
        refused = json.loads((await back.receive(timeout=5)).data)
        assert refused["code"] == "denied" and refused["message"] == DENIAL, refused
        await back.close()

        # A chat while Alex's socket is away in the room: delivered on resuming.
        await therapist.send(type="admit", participant=alex.id)
        await alex.expect("admitted")
        await drop(alex)
        await therapist.expect("peer_reconnecting")
        await therapist.send(type="chat", text=CHAT, id="c-1")
        # Kept in Alex's mailbox meanwhile: resume once it is there.
        mailbox = f"{b.env['SESSIONROOM_REDIS_PREFIX']}:mailbox:{alex.id}"
        admin = aioredis.from_url(redis_on_disk.url)
        try:
            await eventually(lambda: admin.llen(mailbox), what="the chat in Alex's mailbox")
        finally:
            await admin.aclose()
        alex = await resume(http, b, alex)
        chat = await alex.expect("chat")
        assert (chat["text"], chat["from"], chat["id"]) == (CHAT, therapist.id, "c-1")

        admin = aioredis.from_url(redis_on_disk.url)
        try:
            await admin.save()  # the snapshot too
        finally:
            await admin.aclose()
        await therapist.send(type="end")
        await alex.expect("ended")

    written = files_written(redis_on_disk.folder)
    aof = b"".join(v for p, v in written.items() if "appendonly" in p.name)
    # The files are really written: the mailbox and the room went through the AOF.
    assert b":mailbox:" + alex.id.encode() in aof and b":room:sealed" in aof
    assert any(p.name == "dump.rdb" for p in written)
    for text in (NOTICE, DENIAL, CHAT):
        found = [p.name for p, v in written.items() if text.encode() in v]
        assert found == [], f"{text} is in {found}"


async def test_a_chat_never_delivered_is_told_to_its_sender(
    tmp_path: Path, redis_on_disk: RedisServer, http: aiohttp.ClientSession
) -> None:
    async with two_nodes(tmp_path, redis_on_disk, grace_seconds=2) as (a, b):
        therapist = await join(http, a, token("undelivered", Role.THERAPIST, "Dr Sam"))
        alex = await join(http, b, token("undelivered", Role.CLIENT, "Alex"))
        await until_lobby(therapist, lambda w: len(w) == 1)
        await therapist.send(type="admit", participant=alex.id)
        await alex.expect("admitted")
        await therapist.send(type="chat", text="before", id="c-0")
        assert (await alex.expect("chat"))["id"] == "c-0"
        await drop(alex)
        await therapist.expect("peer_reconnecting")
        await therapist.send(type="chat", text="are you there?", id="c-1")
        await therapist.send(type="chat", text="no id given")
        # Alex never comes back: when the grace period ends, the sender is told, once a
        # message, by the id it gave.
        # Told before the `peer_left` of the same expiry: the two, and not the chat that
        # did arrive.
        before = await therapist.before("peer_left", timeout=8, participant=alex.id)
        first, second = [m for m in before if m["type"] == "chat_undelivered"]
        assert first == {"type": "chat_undelivered", "id": "c-1", "to": alex.id}
        assert second["to"] == alex.id and second["id"].startswith("c-")
