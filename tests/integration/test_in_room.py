"""In the room: signal, chat, leave, end."""

from __future__ import annotations

from signaling.core.model import Permission, Role, RoomSettings
from tests.conftest import Harness


async def test_signal_goes_only_to_the_named_participant(harness: Harness) -> None:
    settings = RoomSettings(max_clients=2)
    therapist = await harness.therapist("r", settings=settings)
    a = await harness.client("r", name="A", settings=settings)
    b = await harness.client("r", name="B", settings=settings)
    for c in (a, b):
        await therapist.send(type="admit", participant=c.id)
        await c.expect("admitted")
    await therapist.send(type="signal", to=a.id, data={"sdp": "offer-for-a"})
    assert (await a.expect("signal")) == {
        "type": "signal",
        "from": therapist.id,
        "data": {"sdp": "offer-for-a"},
    }
    # B gets nothing of it: a signal to B sent afterwards is the first B gets.
    await therapist.send(type="signal", to=b.id, data={"marker": True})
    before = await b.before("signal", data={"marker": True})
    assert [m for m in before if m["type"] == "signal"] == []


async def test_signal_before_admission_is_not_allowed(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await harness.client("r")
    await client.send(type="signal", to=therapist.id, data={})
    await client.expect_error("not_allowed")
    # Nor may the therapist signal someone still waiting.
    await therapist.send(type="signal", to=client.id, data={})
    await therapist.expect_error("not_found")


async def test_signal_to_another_rooms_participant_is_not_found(harness: Harness) -> None:
    t1, _c1 = await harness.in_call("room-a")
    t2, c2 = await harness.in_call("room-b")
    await t1.send(type="signal", to=c2.id, data={"x": 1})
    await t1.expect_error("not_found")
    await t1.send(type="signal", to=t1.id, data={"x": 1})
    await t1.expect_error("not_found")
    # Both refusals are answered, so whatever they sent C2 is queued before this signal.
    await t2.send(type="signal", to=c2.id, data={"marker": True})
    before = await c2.before("signal", data={"marker": True})
    assert [m for m in before if m["type"] == "signal"] == []


async def test_signal_needs_the_permission_in_the_link(harness: Harness) -> None:
    therapist = await harness.therapist("r")
    client = await harness.join(
        harness.token("r", Role.CLIENT, "Alex", permissions=frozenset({Permission.CHAT}))
    )
    await therapist.send(type="admit", participant=client.id)
    await client.expect("admitted")
    assert client.joined["participant"]["permissions"] == ["chat"]
    await client.send(type="signal", to=therapist.id, data={})
    await client.expect_error("forbidden")


async def test_everyone_knows_whether_a_participant_takes_part_in_media(
    harness: Harness,
) -> None:
    """`media` in the participant objects: false for a link without `signal` (chat only),
    true otherwise, in `peer_joined`, `admitted`, `joined` (self and peers) and the lobby."""
    settings = RoomSettings(max_clients=2)
    therapist = await harness.therapist("r", settings=settings)
    assert therapist.joined["participant"]["media"] is True
    chat_only = frozenset({Permission.CHAT, Permission.CONSENT})
    texter = await harness.join(
        harness.token("r", Role.CLIENT, "Kim", permissions=chat_only, settings=settings)
    )
    assert texter.joined["participant"]["media"] is False
    [waiting] = (await therapist.expect("lobby"))["waiting"]
    assert waiting["id"] == texter.id and waiting["media"] is False
    await therapist.send(type="admit", participant=texter.id)
    admitted = await texter.expect("admitted")
    assert [(p["id"], p["media"]) for p in admitted["peers"]] == [(therapist.id, True)]
    joined = await therapist.expect("peer_joined")
    assert joined["participant"]["id"] == texter.id and joined["participant"]["media"] is False

    talker = await harness.client("r", name="Sam", settings=settings)
    assert talker.joined["participant"]["media"] is True
    await therapist.send(type="admit", participant=talker.id)
    admitted = await talker.expect("admitted")
    assert sorted((p["name"], p["media"]) for p in admitted["peers"]) == [
        ("Dr Sam", True),
        ("Kim", False),
    ]
    for peer in (therapist, texter):
        joined = await peer.expect("peer_joined")
        assert joined["participant"]["id"] == talker.id and joined["participant"]["media"] is True

    # A second therapist joins straight in and gets the room's `peers` in its `joined`.
    second = await harness.therapist("r", name="Dr Lee", settings=settings)
    assert sorted((p["name"], p["media"]) for p in second.joined["peers"]) == [
        ("Dr Sam", True),
        ("Kim", False),
        ("Sam", True),
    ]


async def test_chat_is_relayed_to_the_others_in_the_room(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.send(type="chat", text="Hello, can you hear me?")
    chat = await therapist.expect("chat")
    assert chat["from"] == client.id and chat["text"] == "Hello, can you hear me?"
    assert isinstance(chat["at"], float)
    # Not echoed to its sender: nothing of it is queued before the answer to a later message.
    assert [m for m in await client.barrier() if m["type"] == "chat"] == []


async def test_chat_limits(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.send(type="chat", text="x" * 2001)
    await client.expect_error("chat_too_long")
    await client.send(type="chat", text="   ")
    await client.expect_error("bad_message")
    await client.send(type="chat", text="x" * 2000)
    assert len((await therapist.expect("chat"))["text"]) == 2000
    waiting = await harness.client("r", name="Waiting")
    await waiting.send(type="chat", text="let me in")
    await waiting.expect_error("not_allowed")


async def test_leave_tells_the_peers_and_closes(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.send(type="leave")
    assert (await client.expect("left"))["type"] == "left"
    assert await client.expect_closed() == 1000
    left = await therapist.expect("peer_left")
    assert left == {"type": "peer_left", "participant": client.id, "reason": "left"}
    # Leaving frees the place: the same link can come back, to the waiting room.
    again = await harness.client("r")
    assert again.joined["state"] == "waiting" and again.id != client.id


async def test_end_closes_the_room_for_everyone(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    waiting = await harness.client("r", name="Later")
    await therapist.send(type="end")
    for peer in (therapist, client, waiting):
        assert (await peer.expect("ended"))["by"] == therapist.id
        assert await peer.expect_closed() == 1000
    late = await harness.open()
    await late.send(type="join", token=harness.token("r"))
    await late.expect_error("room_ended")
    assert await late.expect_closed() == 1008
