"""Dropped sockets: grace period, resume, expiry, heartbeats, shutdown."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient

from signaling.app import create_app
from signaling.core.model import Role
from tests.conftest import AiohttpClient, Harness
from tests.integration.markers import outlast_grace
from tests.polling import eventually
from tests.support import Peer, make_keys, make_settings


async def open_sockets(harness: Harness, count: int) -> bool:
    """Whether the node counts `count` open sockets (it counts one off once it has finished
    with it, its disconnect handled)."""
    metrics = await (await harness.http.get("/metrics")).text()
    return f"sessionroom_sockets {count}\n" in metrics


async def test_resume_keeps_the_place_and_the_id(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    assert (await therapist.expect("peer_reconnecting"))["participant"] == client.id
    back = await harness.join(client.link, client.joined["resume"])
    assert back.id == client.id
    assert back.joined["state"] == "in_room" and back.joined["resumed"] is True
    assert back.joined["peers"][0]["id"] == therapist.id
    assert (await therapist.expect("peer_resumed"))["participant"] == client.id
    # Signalling works again, and no peer_left was ever sent.
    await therapist.send(type="signal", to=client.id, data={"n": 1})
    assert (await back.expect("signal"))["data"] == {"n": 1}
    # The grace timer of the drop runs out (before that of a later drop) and does nothing.
    before = await outlast_grace(harness, "r", therapist)
    assert [m for m in before if m["type"] == "peer_left"] == []


async def test_messages_sent_while_away_arrive_after_resume(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    await therapist.send(type="chat", text="are you there?")
    back = await harness.join(client.link, client.joined["resume"])
    assert (await back.expect("chat"))["text"] == "are you there?"


async def test_waiting_client_resumes_in_the_waiting_room(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await harness.client("r")
    since = client.joined["waiting_since"]
    await therapist.expect("lobby")
    await client.ws.close()
    assert (await therapist.expect("lobby"))["waiting"][0]["connected"] is False
    back = await harness.join(client.link, client.joined["resume"])
    assert back.id == client.id and back.joined["state"] == "waiting"
    assert back.joined["waiting_since"] == since
    assert (await therapist.expect("lobby"))["waiting"][0]["connected"] is True


async def test_grace_period_runs_out(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    left = await therapist.expect("peer_left", timeout=3)
    assert left == {"type": "peer_left", "participant": client.id, "reason": "timeout"}
    # Too late to resume: the link starts over, in the waiting room, as someone new.
    again = await harness.join(client.link, client.joined["resume"])
    assert again.joined["resumed"] is False and again.joined["state"] == "waiting"
    assert again.id != client.id


async def test_reopening_the_link_without_resume_waits_as_a_new_device(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    # The link alone does not take the place back: it waits, and the therapist is told.
    newcomer = await harness.join(client.link)
    assert newcomer.id != client.id and newcomer.joined["state"] == "waiting"
    lobby = await therapist.expect("lobby")
    while not lobby["waiting"]:  # the one sent when the client was admitted
        lobby = await therapist.expect("lobby")
    [entry] = lobby["waiting"]
    assert entry["id"] == newcomer.id
    assert entry["new_device"] is True and entry["replaces"] == client.id
    # The join was answered before the barrier: nothing of it said the client was back.
    assert [m for m in await therapist.barrier() if m["type"] == "peer_resumed"] == []


async def test_a_wrong_resume_secret_is_a_newcomer_without_it(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    forged = await harness.join(client.link, client.id + ".not-the-secret")
    assert forged.id != client.id and forged.joined["state"] == "waiting"
    lobby = await therapist.expect("lobby")
    while not lobby["waiting"]:
        lobby = await therapist.expect("lobby")
    assert lobby["waiting"][0]["replaces"] == client.id
    # A resume token presented with someone else's link is refused outright.
    other = await harness.open()
    await other.send(
        type="join", token=harness.token("r", Role.CLIENT, "Eve"), resume=client.joined["resume"]
    )
    await other.expect_error("invalid_token")


async def test_resume_while_the_old_socket_looks_alive_replaces_it(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    back = await harness.join(client.link, client.joined["resume"])
    assert back.id == client.id
    await client.expect_error("replaced")
    assert await client.expect_closed() == 4001
    await therapist.send(type="signal", to=client.id, data={"to": "new"})
    assert (await back.expect("signal"))["data"] == {"to": "new"}
    # Once the node has finished with the replaced socket (two sockets left)...
    await eventually(lambda: open_sockets(harness, 2), what="the replaced socket's end")
    # ...the therapist was told nothing of it: no `peer_reconnecting`, so no grace timer
    # either, and no `peer_left` now or later.
    told = [m["type"] for m in await therapist.barrier()]
    assert "peer_left" not in told and "peer_reconnecting" not in told


async def test_heartbeat_detects_a_dead_socket(
    aiohttp_client: AiohttpClient,
) -> None:
    http = await aiohttp_client(create_app(make_settings(heartbeat_seconds=0.2), make_keys()))
    harness = Harness(http, make_keys())
    therapist = await harness.therapist("r")
    # A client that never answers pings: the server must notice on its own.
    ws = await http.ws_connect("/ws", autoping=False)
    await ws.send_str(json.dumps({"type": "join", "token": harness.token("r")}))
    assert json.loads((await ws.receive()).data)["type"] == "joined"
    lobby = await therapist.expect("lobby")
    assert lobby["waiting"][0]["connected"] is True
    lobby = await therapist.expect("lobby", timeout=3)
    assert lobby["waiting"][0]["connected"] is False


async def test_shutdown_tells_every_socket(aiohttp_client: AiohttpClient) -> None:
    http: TestClient[Any, Any] = await aiohttp_client(create_app(make_settings(), make_keys()))
    harness = Harness(http, make_keys())
    therapist, client = await harness.in_call("r")

    async def goodbye(peer: Peer) -> tuple[dict[str, Any], int | None]:
        return await peer.expect("server_shutdown"), await peer.expect_closed()

    # Both pages read at once, as real ones would while the server waits for their close.
    closing = asyncio.gather(goodbye(therapist), goodbye(client))
    await http.server.close()
    for message, code in await closing:
        assert message == {"type": "server_shutdown"}
        assert code == 1001


async def test_denied_while_away_is_told_on_resume(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await harness.client("r")
    await therapist.expect("lobby")
    await client.ws.close()
    assert (await therapist.expect("lobby"))["waiting"][0]["connected"] is False
    await therapist.send(type="deny", participant=client.id, message="Please rebook.")
    assert (await therapist.expect("lobby"))["waiting"] == []
    back = await harness.open()
    await back.send(type="join", token=client.link, resume=client.joined["resume"])
    error = await back.expect_error("denied")
    assert error["message"] == "Please rebook."
    assert await back.expect_closed() == 1008
    # It did not slip back into the waiting room: its refused join was answered before this.
    before = await therapist.barrier()
    assert [m for m in before if m["type"] == "lobby" and m["waiting"]] == []
