"""A denial binds the link for the rest of the session, until a therapist allows it again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from signaling.core.errors import Denied
from signaling.core.model import ROLE_PERMISSIONS, Permission, Role
from tests.conftest import Harness
from tests.integration.test_nodes import join, token, two_nodes
from tests.redis_server import RedisServer
from tests.support import Peer


async def _marker(therapist: Peer) -> list[dict[str, Any]]:
    """Everything the therapist got before a marker: an `admit` of nobody, refused."""
    await therapist.send(type="admit", participant="marker")
    got = []
    while (m := await therapist.recv())["type"] != "error":
        got.append(m)
    assert m["code"] == "not_found"
    return got


async def _deny(harness: Harness, therapist: Peer, message: str = "Please book again.") -> Peer:
    client = await harness.join(harness.token("r", Role.CLIENT, "Alex"))
    await therapist.expect("lobby")
    await therapist.send(type="deny", participant=client.id, message=message)
    assert (await client.expect("denied"))["message"] == message
    assert await client.expect_closed() == 1000
    return client


async def _refused(harness: Harness, token: str, resume: str | None = None) -> dict[str, Any]:
    again = await harness.open()
    message: dict[str, Any] = {"type": "join", "token": token}
    if resume:
        message["resume"] = resume
    await again.send(**message)
    error = await again.expect_error("denied")
    assert await again.expect_closed() == 1008
    return error


async def test_the_therapist_sees_who_was_turned_away(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await _deny(harness, therapist)
    lobby = await therapist.expect("lobby")
    assert lobby["waiting"] == []
    [entry] = lobby["denied"]
    # Who and when; never the message (the therapist wrote it, nobody else needs it back).
    assert set(entry) == {"id", "name", "at"}
    assert entry["id"] == client.id and entry["name"] == "Alex"
    assert isinstance(entry["at"], float)
    # A therapist joining later (a reload) gets the same list in `joined`.
    later = await harness.therapist("r", name="Dr Lee")
    assert later.joined["lobby"] == [] and later.joined["denied"] == [entry]


async def test_joining_again_after_a_denial_is_denied_with_the_message(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await _deny(harness, therapist)
    await therapist.expect("lobby")
    # The same link on a new socket (a reload, another device), without and with the old
    # resume token, several times: each is told `denied` with the therapist's words.
    for resume in (None, client.joined["resume"], None):
        error = await _refused(harness, client.link, resume)
        assert error["message"] == "Please book again."
    # None of them reached the waiting room.
    assert [m for m in await _marker(therapist) if m["type"] == "lobby"] == []


async def test_a_denial_while_the_socket_was_away_binds_the_link_too(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await harness.client("r")
    await therapist.expect("lobby")
    await client.ws.close()
    assert (await therapist.expect("lobby"))["waiting"][0]["connected"] is False
    await therapist.send(type="deny", participant=client.id)
    assert (await therapist.expect("lobby"))["denied"][0]["id"] == client.id
    # No message: the default text.
    error = await _refused(harness, client.link)
    assert error["message"] == Denied.default_message
    assert [m for m in await _marker(therapist) if m["type"] == "lobby"] == []


async def test_allow_again_lets_the_link_wait_again(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await _deny(harness, therapist)
    await therapist.expect("lobby")
    await therapist.send(type="allow", participant=client.id)
    lobby = await therapist.expect("lobby")
    assert lobby == {"type": "lobby", "waiting": [], "denied": []}
    back = await harness.join(client.link)
    # Into the waiting room, as anyone: not straight into the room, and a new participant.
    assert back.joined["state"] == "waiting" and back.joined["resumed"] is False
    assert back.id != client.id
    assert [p["id"] for p in (await therapist.expect("lobby"))["waiting"]] == [back.id]
    # Allowing the same person twice: nobody is turned away under that id any more.
    await therapist.send(type="allow", participant=client.id)
    await therapist.expect_error("not_found")
    # And a second denial of the link binds it again.
    await therapist.send(type="deny", participant=back.id, message="Not today.")
    assert (await back.expect("denied"))["message"] == "Not today."
    assert [d["id"] for d in (await therapist.expect("lobby"))["denied"]] == [back.id]
    assert (await _refused(harness, client.link))["message"] == "Not today."


async def test_a_client_never_denied_is_unaffected(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    await _deny(harness, therapist)
    await therapist.expect("lobby")
    other = await harness.client("r", name="Sam")
    assert other.joined["state"] == "waiting"
    assert [p["id"] for p in (await therapist.expect("lobby"))["waiting"]] == [other.id]
    await therapist.send(type="admit", participant=other.id)
    await other.expect("admitted")
    # A therapist link opened again is not touched by a client's denial either.
    assert (await harness.therapist("r", name="Dr Lee")).joined["state"] == "in_room"


async def test_only_a_therapist_may_allow(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    denied = await harness.client("r", name="Other")
    await therapist.expect("lobby")
    await therapist.send(type="deny", participant=denied.id)
    await denied.expect("denied")
    await client.send(type="allow", participant=denied.id)
    await client.expect_error("forbidden")
    # Still turned away, and the client's socket lives on.
    assert (await _refused(harness, denied.link))["code"] == "denied"
    await client.send(type="chat", text="still here")
    assert (await therapist.expect("chat"))["text"] == "still here"
    # A bad `allow` is refused as any bad message is.
    await therapist.send(type="allow")
    await therapist.expect_error("bad_message")
    # A therapist link without `admit` may not allow either (nor admit).
    perms = ROLE_PERMISSIONS[Role.THERAPIST] - {Permission.ADMIT}
    limited = await harness.join(harness.token("r", Role.THERAPIST, "Dr Lee", permissions=perms))
    await limited.send(type="allow", participant=denied.id)
    await limited.expect_error("forbidden")
    assert (await _refused(harness, denied.link))["code"] == "denied"


@pytest.mark.network
async def test_a_denial_on_one_node_binds_the_link_on_the_other(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Two real nodes on one Redis: denied on node A, the link is refused on node B too,
    with the therapist's words (kept in Redis in between); allowed on A, it waits on B."""
    async with two_nodes(tmp_path, redis_server) as (a, b), aiohttp.ClientSession() as http:
        therapist = await join(http, a, token("r", Role.THERAPIST, "Dr Sam"))
        link = token("r", Role.CLIENT, "Alex")
        client = await join(http, b, link)
        await therapist.expect("lobby")
        await therapist.send(type="deny", participant=client.id, message="Please rebook.")
        assert (await client.expect("denied"))["message"] == "Please rebook."
        assert (await therapist.expect("lobby"))["denied"][0]["id"] == client.id
        for node in (b, a):
            again = Peer(await http.ws_connect(f"{node.url}/ws"))
            await again.send(type="join", token=link)
            assert (await again.expect_error("denied"))["message"] == "Please rebook."
            assert await again.expect_closed() == 1008
        await therapist.send(type="allow", participant=client.id)
        assert (await therapist.expect("lobby"))["denied"] == []
        back = await join(http, b, link)
        assert back.joined["state"] == "waiting" and back.id != client.id


async def test_turning_a_link_away_turns_away_its_other_waiting_device(harness: Harness) -> None:
    """Alex's link is open on two devices, the second waiting to replace the first ("Join
    here instead"). Turning the first away turns the link away: the second hears the same
    words and never reaches the room."""
    therapist = await harness.therapist("r")
    client = await harness.join(harness.token("r", Role.CLIENT, "Alex"))
    await therapist.expect("lobby")
    here = await harness.open()
    await here.send(type="join", token=client.link, new_device=True)
    joined = await here.expect("joined")
    assert joined["state"] == "waiting"
    second = joined["participant"]["id"]
    while second not in [w["id"] for w in (await therapist.expect("lobby"))["waiting"]]:
        pass
    await therapist.send(type="deny", participant=client.id, message="Please book again.")
    for device in (client, here):
        assert (await device.expect("denied"))["message"] == "Please book again."
        assert await device.expect_closed() == 1000
    lobby = await therapist.expect("lobby")
    assert lobby["waiting"] == [] and [d["id"] for d in lobby["denied"]] == [client.id]
    # Admitting the second device now is refused: it is not waiting.
    await therapist.send(type="admit", participant=second)
    assert (await therapist.expect("error"))["code"] in ("not_found", "conflict")
