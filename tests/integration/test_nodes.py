"""Two real server processes sharing one real redis-server: any node takes any socket.

The therapist's socket is on node A and the client's on node B throughout, unless a test
kills a node. Participants are this process's sockets and aiortc peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from signaling.core.model import RecordingMode, Role, RoomSettings
from tests.integration.recording_peers import (
    Leg,
    answer_leg,
    decode,
    open_leg,
    record_everyone,
    state,
)
from tests.redis_server import RedisServer
from tests.server_process import Server
from tests.support import Peer, make_keys, mint

pytestmark = pytest.mark.network

CONSENT = RoomSettings(recording=RecordingMode.CONSENT)


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, redis_server: RedisServer, grace_seconds: int = 20
) -> AsyncIterator[tuple[Server, Server]]:
    """Nodes A and B, real processes on one Redis (a key prefix of their own)."""
    shared = {
        "SESSIONROOM_REDIS_URL": redis_server.url,
        "SESSIONROOM_REDIS_PREFIX": "n" + secrets.token_hex(4),
        "SESSIONROOM_GRACE_SECONDS": str(grace_seconds),
    }
    # One folder for both: the shared recordings volume of a deployment.
    a = Server(tmp_path, SESSIONROOM_NODE_ID="node-a", **shared)
    b = Server(tmp_path, SESSIONROOM_NODE_ID="node-b", **shared)
    try:
        await asyncio.gather(a.start(), b.start())
        yield a, b
    finally:
        await asyncio.gather(a.close(), b.close())


@pytest.fixture
async def nodes(tmp_path: Path, redis_server: RedisServer) -> AsyncIterator[tuple[Server, Server]]:
    async with two_nodes(tmp_path, redis_server) as pair:
        yield pair


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def join(
    http: aiohttp.ClientSession,
    node: Server,
    token: str,
    resume: str | None = None,
) -> Peer:
    peer = Peer(await http.ws_connect(f"{node.url}/ws"))
    peer.link = token
    message = {"type": "join", "token": token}
    if resume:
        message["resume"] = resume
    await peer.send(**message)
    peer.joined = await peer.expect("joined")
    return peer


def token(room: str, role: Role, name: str, settings: RoomSettings | None = None) -> str:
    return mint(make_keys(), room, role, name, settings=settings)


async def call(
    http: aiohttp.ClientSession, a: Server, b: Server, room: str, settings: RoomSettings | None
) -> tuple[Peer, Peer]:
    therapist = await join(http, a, token(room, Role.THERAPIST, "Dr Sam", settings))
    client = await join(http, b, token(room, Role.CLIENT, "Alex", settings))
    assert client.joined["state"] == "waiting"
    lobby = await therapist.expect("lobby")
    assert [w["name"] for w in lobby["waiting"]] == ["Alex"]
    await therapist.send(type="admit", participant=client.id)
    admitted = await client.expect("admitted")
    assert [p["id"] for p in admitted["peers"]] == [therapist.id]
    assert (await therapist.expect("peer_joined"))["participant"]["id"] == client.id
    return therapist, client


async def test_a_session_across_two_nodes(
    nodes: tuple[Server, Server], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    therapist, client = await call(http, a, b, "across", None)
    for n in range(20):
        await therapist.send(type="signal", to=client.id, data={"kind": "candidate", "n": n})
        await client.send(type="signal", to=therapist.id, data={"kind": "candidate", "n": n})
    got_client = [(await client.expect("signal"))["data"]["n"] for _ in range(20)]
    got_therapist = [(await therapist.expect("signal"))["data"]["n"] for _ in range(20)]
    assert got_client == got_therapist == list(range(20))
    await client.send(type="chat", text="hello from node B")
    chat = await therapist.expect("chat")
    assert (chat["from"], chat["text"]) == (client.id, "hello from node B")
    await therapist.send(type="end")
    ended = await client.expect("ended")
    assert ended["by"] == therapist.id
    assert await client.expect_closed() == 1000


async def test_two_therapists_on_two_nodes_admit_once(
    nodes: tuple[Server, Server], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    first = await join(http, a, token("race", Role.THERAPIST, "Dr Sam"))
    second = await join(http, b, token("race", Role.THERAPIST, "Dr Kim"))
    client = await join(http, b, token("race", Role.CLIENT, "Alex"))
    for t in (first, second):
        while not (await t.expect("lobby"))["waiting"]:
            pass
    await asyncio.gather(
        first.send(type="admit", participant=client.id),
        second.send(type="admit", participant=client.id),
    )
    await client.expect("admitted")
    # Each therapist's own answers (a refusal) come before its barrier; once both are in,
    # both admits are done, and so are the publishes they made.
    seen = {"first": await first.barrier(), "second": await second.barrier()}
    # What they sent over the bus comes before a later message on the same way: from
    # node B (the client's) to each therapist, and from node A (the first's) to the client.
    for t in (first, second):
        await client.send(type="signal", to=t.id, data={"marker": True})
    for name, t in (("first", first), ("second", second)):
        seen[name] += await t.before("signal", data={"marker": True})
    await first.send(type="signal", to=client.id, data={"marker": True})
    seen["client"] = await client.before("signal", data={"marker": True})
    errors = [m["code"] for name in ("first", "second") for m in seen[name] if m["type"] == "error"]
    assert errors == ["conflict"], seen
    for name in ("first", "second"):
        joined = [m for m in seen[name] if m["type"] == "peer_joined"]
        assert [m["participant"]["id"] for m in joined].count(client.id) == 1, seen[name]
    assert [m["type"] for m in seen["client"]].count("admitted") == 0, seen["client"]


async def test_recording_across_two_nodes(
    nodes: tuple[Server, Server], http: aiohttp.ClientSession
) -> None:
    a, b = nodes
    therapist, client = await call(http, a, b, "rec-across", CONSENT)
    started = await record_everyone(therapist, client)
    legs: list[Leg] = []
    try:
        for peer in (therapist, client):  # each leg on the node that holds its socket
            legs.append(await open_leg(peer, started.recording))
        for peer, leg in zip((therapist, client), legs, strict=True):
            await answer_leg(peer, leg)
        await asyncio.sleep(4)
        await client.send(type="consent", request=started.request, granted=False)  # on B
        stopped = await state(therapist, "stopped")
        assert stopped["reason"] == "withdrawn"
    finally:
        await asyncio.gather(*(leg.close() for leg in legs))
    manifest_path = a.recordings / started.recording / "manifest.json"
    for _ in range(200):
        manifest = json.loads(manifest_path.read_text())
        if manifest["status"] == "complete":
            break
        await asyncio.sleep(0.05)
    assert manifest["status"] == "complete", manifest
    assert {f["participant"] for f in manifest["files"]} == {therapist.id, client.id}
    interval = stopped["at"] - started.at
    for info in manifest["files"]:
        decoded = decode(a.recordings / started.recording / info["name"])
        assert decoded.kinds == {"audio", "video"}
        assert decoded.last <= interval + 0.5 and decoded.last > interval - 1.5, decoded
    assert not (a.recordings / started.recording / "parts").exists()


@pytest.mark.parametrize("when", ["at_once", "after_takeover"])
async def test_a_killed_node_s_client_resumes_on_the_other(
    nodes: tuple[Server, Server], http: aiohttp.ClientSession, when: str
) -> None:
    a, b = nodes
    therapist, client = await call(http, a, b, "failover", None)
    await b.kill()
    if when == "after_takeover":
        # Node B's heartbeat lapses (5 s) and node A takes over its participants (the
        # therapist is told the client is reconnecting); only then does the page get back.
        reconnecting = await therapist.expect("peer_reconnecting", timeout=15)
        assert reconnecting["participant"] == client.id
    # The page reconnects (to whichever node answers: here A) with its resume token.
    back = await join(http, a, client.link, resume=client.joined["resume"])
    assert back.joined["resumed"] is True and back.joined["state"] == "in_room"
    assert back.id == client.id
    assert [p["id"] for p in back.joined["peers"]] == [therapist.id]
    # The therapist hears of it, and the call goes on through node A.
    await therapist.send(type="signal", to=client.id, data={"kind": "candidate"})
    # Nothing closes it: what was kept for the old socket (its `replaced`) is not for this
    # one. Kept envelopes are handed over when the socket subscribes, before the signal.
    before = await back.before("signal", data={"kind": "candidate"}, from_=therapist.id)
    assert not [m for m in before if m["type"] == "error"], before
    assert not back.ws.closed


async def test_a_dead_node_s_participants_are_held_then_let_go(
    tmp_path: Path, redis_server: RedisServer, http: aiohttp.ClientSession
) -> None:
    async with two_nodes(tmp_path, redis_server, grace_seconds=3) as (a, b):
        therapist, client = await call(http, a, b, "dead-node", None)
        await b.kill()
        # Node A notices B's heartbeat is gone, holds the client's place, then lets go.
        reconnecting = await therapist.expect("peer_reconnecting", timeout=15)
        assert reconnecting["participant"] == client.id
        left = await therapist.expect("peer_left", timeout=15)
        assert (left["participant"], left["reason"]) == (client.id, "timeout")


async def test_redis_away_then_back(
    nodes: tuple[Server, Server], http: aiohttp.ClientSession, redis_server: RedisServer
) -> None:
    a, b = nodes
    therapist, client = await call(http, a, b, "redis-away", None)
    redis_server.stop()
    try:
        refused = Peer(await http.ws_connect(f"{a.url}/ws"))
        await refused.send(type="join", token=token("new-room", Role.THERAPIST, "Dr Lee"))
        await refused.expect_error("service_unavailable")
        assert await refused.expect_closed() == 1008
        # Sockets already open stay open: the call's media is peer to peer meanwhile.
        assert not therapist.ws.closed and not client.ws.closed
        async with http.get(f"{a.url}/readyz") as response:
            assert response.status == 503
    finally:
        redis_server.start()
    # Both nodes reconnect by themselves and serve again.
    for node in (a, b):
        for _ in range(100):
            try:
                fresh = await join(http, node, token(f"back-{node.port}", Role.THERAPIST, "Dr"))
                assert fresh.joined["state"] == "in_room"
                break
            except AssertionError:
                await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"{node.url} did not serve again")
    # This Redis kept nothing: the call's sockets learn it on their next message, and their
    # pages join again from the start (the client through the waiting room).
    await therapist.send(type="chat", text="still there?")
    await therapist.expect_error("service_unavailable")
    assert await therapist.expect_closed() == 1008
    again = await join(http, a, therapist.link, resume=therapist.joined["resume"])
    assert again.joined["state"] == "in_room" and again.joined["resumed"] is False


async def test_a_fault_while_handling_a_message_is_internal_error_and_the_socket_carries_on(
    nodes: tuple[Server, Server], http: aiohttp.ClientSession, redis_server: RedisServer
) -> None:
    a, b = nodes
    therapist, client = await call(http, a, b, "fault", None)
    # A fault no message can cause: the room's state in Redis damaged by hand.
    key = f"{b.env['SESSIONROOM_REDIS_PREFIX']}:room:fault"
    store = aioredis.from_url(redis_server.url)
    try:
        good = await store.get(key)
        assert good is not None
        await store.set(key, b"{damaged", keepttl=True)
        await client.send(type="chat", text="words nobody may log")
        await client.expect_error("internal_error")
        assert not client.ws.closed
        await store.set(key, good, keepttl=True)
        await client.send(type="chat", text="after the fault")
    finally:
        await store.aclose()
    # The socket carried on, and the chat said during the fault went nowhere.
    chat = await therapist.expect("chat")
    assert (chat["from"], chat["text"]) == (client.id, "after the fault")
    # Node B logged the fault by ids, never the chat.
    log = b.log()
    assert "message handling failed" in log, log
    failed = next(line for line in log.splitlines() if "message handling failed" in line)
    assert client.id in failed and "fault" in failed, failed
    assert "words nobody may log" not in log
