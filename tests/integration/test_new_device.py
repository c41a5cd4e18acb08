"""Only the holder of the resume secret gets a place back: rotation, new devices, the
therapist's lobby, replacing the old place, and the bound on a therapist link's sockets."""

from __future__ import annotations

from typing import Any

from signaling.core.model import Role, RoomSettings
from tests.conftest import Harness
from tests.integration.markers import outlast_grace
from tests.support import Peer


async def join_here_instead(harness: Harness, token: str) -> Peer:
    peer = await harness.open()
    peer.link = token
    await peer.send(type="join", token=token, new_device=True)
    peer.joined = await peer.expect("joined")
    return peer


async def lobby_entry(therapist: Peer, participant: str) -> dict[str, Any]:
    """The participant's entry in the next lobby update that lists it."""
    while True:
        lobby = await therapist.expect("lobby")
        for entry in lobby["waiting"]:
            if entry["id"] == participant:
                assert isinstance(entry, dict)
                return entry


async def test_the_resume_secret_rotates_and_an_old_one_no_longer_works(
    harness: Harness,
) -> None:
    therapist, client = await harness.in_call("r")
    first_secret = client.joined["resume"]
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    back = await harness.join(client.link, first_secret)
    assert back.id == client.id and back.joined["resumed"] is True
    assert back.joined["resume"] != first_secret
    assert back.joined["resume"].startswith(client.id + ".")
    await therapist.expect("peer_resumed")
    # Each resume rotates it again.
    await back.ws.close()
    await therapist.expect("peer_reconnecting")
    again = await harness.join(client.link, back.joined["resume"])
    assert again.id == client.id and again.joined["resume"] != back.joined["resume"]
    await therapist.expect("peer_resumed")
    # The first secret (a copy taken earlier, say) is now a newcomer without the secret:
    # the place is live, so the link is in use.
    stale = await harness.open()
    await stale.send(type="join", token=client.link, resume=first_secret)
    await stale.expect_error("link_in_use")
    assert await stale.expect_closed() == 1008
    # With the place away, the old secret only reaches the waiting room as a new device.
    await again.ws.close()
    await therapist.expect("peer_reconnecting")
    newcomer = await harness.join(client.link, back.joined["resume"])
    assert newcomer.id != client.id and newcomer.joined["state"] == "waiting"
    assert newcomer.joined["resumed"] is False
    entry = await lobby_entry(therapist, newcomer.id)
    assert entry["new_device"] is True and entry["replaces"] == client.id
    # The holder of the current secret still gets its place back.
    holder = await harness.join(client.link, again.joined["resume"])
    assert holder.id == client.id and holder.joined["state"] == "in_room"


async def test_new_device_while_the_first_socket_is_live(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    second = await harness.open()
    await second.send(type="join", token=client.link)
    await second.expect_error("link_in_use")
    assert await second.expect_closed() == 1008
    assert (await therapist.expect("link_in_use"))["participant"] == client.id
    # "Join here instead": the waiting room, as a new device.
    here = await join_here_instead(harness, client.link)
    assert here.id != client.id and here.joined["state"] == "waiting"
    entry = await lobby_entry(therapist, here.id)
    assert entry["new_device"] is True and entry["replaces"] == client.id
    # Nothing reached the first device meanwhile: a signal sent now is the first it gets.
    await therapist.send(type="signal", to=client.id, data={"marker": True})
    before = await client.before("signal", data={"marker": True})
    assert [m for m in before if m["type"] == "error"] == []
    # A third try while that new device waits, live, is refused too.
    third = await harness.open()
    await third.send(type="join", token=client.link, new_device=True)
    await third.expect_error("link_in_use")
    # Admitting the new device replaces the old place.
    await therapist.send(type="admit", participant=here.id)
    admitted = await here.expect("admitted")
    assert [p["id"] for p in admitted["peers"]] == [therapist.id]
    await client.expect_error("replaced")
    assert await client.expect_closed() == 4001
    left = await therapist.expect("peer_left")
    assert left == {"type": "peer_left", "participant": client.id, "reason": "replaced"}
    assert (await therapist.expect("peer_joined"))["participant"]["id"] == here.id
    assert (await therapist.expect("lobby"))["waiting"] == []
    await therapist.send(type="signal", to=here.id, data={"n": 1})
    assert (await here.expect("signal"))["data"] == {"n": 1}
    # The replaced place's secret gets nothing back.
    old = await harness.open()
    await old.send(type="join", token=client.link, resume=client.joined["resume"])
    await old.expect_error("link_in_use")


async def test_after_a_drop_a_newcomer_waits_and_admitting_it_replaces_the_place(
    harness: Harness,
) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    newcomer = await harness.join(client.link)
    assert newcomer.joined["state"] == "waiting" and newcomer.id != client.id
    entry = await lobby_entry(therapist, newcomer.id)
    assert entry["new_device"] is True and entry["replaces"] == client.id
    await therapist.send(type="admit", participant=newcomer.id)
    await newcomer.expect("admitted")
    left = await therapist.expect("peer_left")
    assert left == {"type": "peer_left", "participant": client.id, "reason": "replaced"}
    assert (await therapist.expect("peer_joined"))["participant"]["id"] == newcomer.id
    # The old place is gone for good: no resume...
    again = await harness.open()
    await again.send(type="join", token=client.link, resume=client.joined["resume"])
    await again.expect_error("link_in_use")
    # ...and no timeout later: the old place's grace timer runs out before that of a later
    # drop, and nothing comes of it.
    before = await outlast_grace(harness, "r", therapist)
    assert [m for m in before if m["type"] == "peer_left"] == []


async def test_a_waiting_new_device_becomes_an_ordinary_waiter_when_the_place_runs_out(
    harness: Harness,
) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    newcomer = await harness.join(client.link)
    assert (await lobby_entry(therapist, newcomer.id))["new_device"] is True
    assert (await therapist.expect("peer_left", timeout=3))["reason"] == "timeout"
    entry = await lobby_entry(therapist, newcomer.id)
    assert entry["new_device"] is False and entry["replaces"] is None


async def test_without_a_waiting_room_a_newcomer_waits_for_the_grace_period(
    harness: Harness,
) -> None:
    settings = RoomSettings(waiting_room=False)
    therapist = await harness.therapist("r", settings=settings)
    client = await harness.client("r", settings=settings)
    assert client.joined["state"] == "in_room"
    await therapist.expect("peer_joined")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    newcomer = await harness.join(client.link)
    assert newcomer.joined["state"] == "waiting" and newcomer.id != client.id
    entry = await lobby_entry(therapist, newcomer.id)
    assert entry["new_device"] is True
    # Not in before the old place's grace period has ended...
    await therapist.send(type="lobby_notice", text="Nearly there.")
    assert [m for m in await newcomer.before("lobby_notice") if m["type"] == "admitted"] == []
    # ...then in, on a fresh place.
    left = await therapist.expect("peer_left", timeout=3)
    assert left == {"type": "peer_left", "participant": client.id, "reason": "timeout"}
    admitted = await newcomer.expect("admitted")
    assert [p["id"] for p in admitted["peers"]] == [therapist.id]
    assert (await therapist.expect("peer_joined"))["participant"]["id"] == newcomer.id


async def test_without_a_waiting_room_a_live_link_is_still_in_use(harness: Harness) -> None:
    settings = RoomSettings(waiting_room=False)
    therapist = await harness.therapist("r", settings=settings)
    client = await harness.client("r", settings=settings)
    await therapist.expect("peer_joined")
    second = await harness.open()
    await second.send(type="join", token=client.link)
    await second.expect_error("link_in_use")
    # Joining here instead waits until the first place is gone: leaving frees it at once.
    here = await join_here_instead(harness, client.link)
    assert here.joined["state"] == "waiting"
    await client.send(type="leave")
    await client.expect("left")
    assert (await here.expect("admitted"))["peers"][0]["id"] == therapist.id


async def test_a_therapist_link_holds_at_most_two_sockets(harness: Harness) -> None:
    token = harness.token("r", Role.THERAPIST, "Dr Sam")
    laptop = await harness.join(token)
    client = await harness.client("r")
    await laptop.expect("lobby")
    await laptop.send(type="admit", participant=client.id)
    await client.expect("admitted")
    phone = await harness.join(token)
    assert phone.id != laptop.id and phone.joined["state"] == "in_room"
    assert (await client.expect("peer_joined"))["participant"]["id"] == phone.id
    third = await harness.open()
    await third.send(type="join", token=token)
    await third.expect_error("link_in_use")
    assert await third.expect_closed() == 1008
    # A socket in its grace period still counts.
    await phone.ws.close()
    await client.expect("peer_reconnecting")
    fourth = await harness.open()
    await fourth.send(type="join", token=token)
    await fourth.expect_error("link_in_use")
    # The client heard of one extra therapist only: nothing before a signal sent now.
    await laptop.send(type="signal", to=client.id, data={"marker": True})
    before = await client.before("signal", data={"marker": True})
    assert [m for m in before if m["type"] == "peer_joined"] == []
    # The holder of the secret comes back into its own place, with a new secret; the old
    # secret is then a newcomer, and the link is full.
    back = await harness.join(token, phone.joined["resume"])
    assert back.id == phone.id and back.joined["resume"] != phone.joined["resume"]
    stale = await harness.open()
    await stale.send(type="join", token=token, resume=phone.joined["resume"])
    await stale.expect_error("link_in_use")
    # Once a place is really gone, the link may open another.
    await back.send(type="leave")
    await back.expect("left")
    fresh = await harness.join(token)
    assert fresh.id not in {laptop.id, phone.id}


async def test_new_device_must_be_a_boolean(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send(type="join", token=harness.token("r"), new_device="yes")
    await peer.expect_error("bad_message")


async def test_one_new_device_waits_per_place(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    first = await harness.join(client.link)
    await lobby_entry(therapist, first.id)
    await first.ws.close()
    # That new device's socket is gone: the next one takes its turn, and only it is listed.
    second = await harness.join(client.link)
    lobby = await therapist.expect("lobby")
    while second.id not in [e["id"] for e in lobby["waiting"]]:
        lobby = await therapist.expect("lobby")
    assert [(e["id"], e["replaces"]) for e in lobby["waiting"]] == [(second.id, client.id)]
