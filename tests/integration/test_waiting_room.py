"""The waiting room over real sockets: lobby, admit, deny, notices, presence, capacity."""

from __future__ import annotations

import asyncio

from signaling.core.model import Role, RoomSettings
from tests.conftest import Harness


async def test_client_waits_and_therapist_admits(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    assert therapist.joined["state"] == "in_room"
    assert therapist.joined["lobby"] == []
    assert therapist.joined["participant"]["role"] == "therapist"
    assert therapist.joined["resume"].startswith(therapist.id + ".")

    client = await harness.client("r", name="Alex  Doe")
    assert client.joined["state"] == "waiting"
    assert client.joined["therapist_present"] is True
    assert client.joined["participant"]["name"] == "Alex Doe"
    assert "peers" not in client.joined

    lobby = await therapist.expect("lobby")
    [entry] = lobby["waiting"]
    assert entry["id"] == client.id and entry["name"] == "Alex Doe" and entry["connected"]
    assert entry["since"] == client.joined["waiting_since"]

    await therapist.send(type="admit", participant=client.id)
    admitted = await client.expect("admitted")
    assert admitted["peers"] == [
        {"id": therapist.id, "role": "therapist", "name": "Dr Sam", "media": True}
    ]
    joined = await therapist.expect("peer_joined")
    assert joined["participant"] == {
        "id": client.id,
        "role": "client",
        "name": "Alex Doe",
        "media": True,
    }
    assert (await therapist.expect("lobby"))["waiting"] == []


async def test_waiting_clients_see_whether_the_therapist_is_present(harness: Harness) -> None:
    client = await harness.client("r")
    assert client.joined["therapist_present"] is False
    therapist = await harness.therapist("r")
    assert (await client.expect("waiting_status")) == {
        "type": "waiting_status",
        "therapist_present": True,
    }
    await therapist.send(type="leave")
    assert (await client.expect("waiting_status"))["therapist_present"] is False


async def test_deny_with_a_message_closes_the_clients_socket(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await harness.client("r")
    await therapist.expect("lobby")
    await therapist.send(type="deny", participant=client.id, message="Please book again.")
    denied = await client.expect("denied")
    assert denied["message"] == "Please book again."
    assert await client.expect_closed() == 1000
    assert (await therapist.expect("lobby"))["waiting"] == []
    # Admitting the denied participant now finds nobody.
    await therapist.send(type="admit", participant=client.id)
    await therapist.expect_error("not_found")


async def test_lobby_notice_reaches_waiting_clients_and_newcomers(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    first = await harness.client("r", name="A", settings=RoomSettings(max_clients=2))
    await therapist.send(type="lobby_notice", text="Running 5 minutes late")
    assert (await first.expect("lobby_notice"))["text"] == "Running 5 minutes late"
    second = await harness.client("r", name="B")
    assert second.joined["notice"] == "Running 5 minutes late"


async def test_client_may_not_run_the_waiting_room(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    other = await harness.client("r", name="Other")
    for message in (
        {"type": "admit", "participant": other.id},
        {"type": "deny", "participant": other.id},
        {"type": "lobby_notice", "text": "hi"},
        {"type": "end"},
    ):
        await client.send(**message)
        await client.expect_error("forbidden")
    # The client's socket survived all four refusals.
    await client.send(type="signal", to=therapist.id, data={"ok": 1})
    assert (await therapist.expect("signal"))["data"] == {"ok": 1}


async def test_room_without_waiting_room_lets_clients_straight_in(harness: Harness) -> None:
    settings = RoomSettings(waiting_room=False)
    therapist = await harness.therapist("r", settings=settings)
    client = await harness.client("r", settings=settings)
    assert client.joined["state"] == "in_room"
    assert client.joined["peers"][0]["id"] == therapist.id
    assert (await therapist.expect("peer_joined"))["participant"]["id"] == client.id
    # A second client is over max_clients (1): refused, socket closed.
    extra = await harness.open()
    await extra.send(type="join", token=harness.token("r", name="Extra", settings=settings))
    await extra.expect_error("room_full")
    assert await extra.expect_closed() == 1008


async def test_admit_respects_max_clients(harness: Harness) -> None:
    settings = RoomSettings(max_clients=2)
    therapist = await harness.therapist("r", settings=settings)
    clients = [await harness.client("r", name=f"C{i}", settings=settings) for i in range(3)]
    for c in clients[:2]:
        await therapist.send(type="admit", participant=c.id)
        await c.expect("admitted")
    await therapist.send(type="admit", participant=clients[2].id)
    await therapist.expect_error("room_full")
    # Both admitted clients see each other: a family session with one connection per pair.
    assert (await clients[0].expect("peer_joined"))["participant"]["id"] == clients[1].id


async def test_two_therapists_admitting_at_once_give_one_outcome(harness: Harness) -> None:
    first = await harness.therapist("r", name="T1")
    second = await harness.therapist("r", name="T2")
    client = await harness.client("r")
    await first.expect("lobby")
    await second.expect("lobby")
    await asyncio.gather(
        first.send(type="admit", participant=client.id),
        second.send(type="admit", participant=client.id),
    )
    await client.expect("admitted")
    outcomes = []
    for t in (first, second):
        # Everything its admit caused, and the other's (one room changes one act at a time,
        # and the loser's refusal comes after the winner's messages).
        got = await t.barrier()
        outcomes.append(
            [m.get("code") for m in got if m["type"] == "error"]
            + [
                m["type"]
                for m in got
                if m["type"] == "peer_joined" and m["participant"]["id"] == client.id
            ]
        )
    # Each therapist sees the client join once; exactly one of them was told it was too late.
    assert sorted(o.count("conflict") for o in outcomes) == [0, 1]
    assert all(o.count("peer_joined") == 1 for o in outcomes)
    assert [m for m in await client.barrier() if m["type"] == "admitted"] == []


async def test_link_in_use_on_a_second_device(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    token = harness.token("r", Role.CLIENT, "Alex")
    first = await harness.join(token)
    await therapist.expect("lobby")
    second = await harness.open()
    await second.send(type="join", token=token)
    await second.expect_error("link_in_use")
    assert await second.expect_closed() == 1008
    alert = await therapist.expect("link_in_use")
    assert alert["participant"] == first.id
    # The page retries quietly; the therapist is told once, not at every try.
    third = await harness.open()
    await third.send(type="join", token=token)
    await third.expect_error("link_in_use")
    assert [m for m in await therapist.barrier() if m["type"] == "link_in_use"] == []
    # The first device is unaffected.
    await therapist.send(type="admit", participant=first.id)
    await first.expect("admitted")
