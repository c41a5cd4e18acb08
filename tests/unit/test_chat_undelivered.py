"""A chat that never reaches a recipient is told to its sender (memory backends; the same on
Redis is shown with two real nodes in tests/integration/test_sealed_texts.py)."""

from __future__ import annotations

from typing import Any

import pytest

from signaling import protocol
from signaling.bus import Envelope
from signaling.core.errors import BadMessage
from signaling.core.model import Role, RoomSettings
from signaling.memory_bus import MemoryMessageBus
from signaling.memory_store import MemoryRoomStore
from signaling.rooms import RoomService, Session
from tests.polling import eventually
from tests.support import make_keys, mint

GRACE = 0.2


class Socket:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []

    def __call__(self, envelope: Envelope) -> None:
        if envelope.payload is not None:
            self.got.append(dict(envelope.payload))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.got if m["type"] == kind]


Room = tuple[RoomService, MemoryMessageBus, dict[str, Session], dict[str, Socket], dict[str, str]]


async def _room() -> Room:
    keys = make_keys()
    bus = MemoryMessageBus("n")
    service = RoomService(MemoryRoomStore(), bus, keys, grace_seconds=GRACE)
    settings = RoomSettings(max_clients=2)
    sessions, sockets, resume = {}, {}, {}
    for name, role in (("sam", Role.THERAPIST), ("alex", Role.CLIENT), ("kim", Role.CLIENT)):
        claims = keys.verify(mint(keys, "r", role, name, settings=settings))
        joined = await service.join(claims, None)
        s = joined.session
        sessions[name], sockets[name], resume[name] = s, Socket(), joined.message["resume"]
        await bus.subscribe(s.participant_id, sockets[name])
    for name in ("alex", "kim"):
        await service.admit(sessions["sam"], sessions[name].participant_id)
    return service, bus, sessions, sockets, resume


async def test_each_recipient_who_never_got_it_is_named_to_the_sender() -> None:
    service, bus, s, sockets, _ = await _room()
    alex = s["alex"].participant_id
    await bus.unsubscribe(alex, sockets["alex"])
    await service.disconnected(s["alex"])
    await service.chat(s["sam"], "see you next week", "c-7")
    # Kim, still here, has it at once; Alex's is kept for the grace period.
    assert [m["id"] for m in sockets["kim"].of("chat")] == ["c-7"]
    # The grace period runs out: the sender is told, then everyone hears Alex has gone.
    await eventually(lambda: sockets["kim"].of("peer_left"), what="Alex's timeout")
    assert sockets["sam"].of("chat_undelivered") == [
        {"type": "chat_undelivered", "id": "c-7", "to": alex}
    ]
    assert sockets["kim"].of("chat_undelivered") == []  # only the sender is told
    await service.close()


async def test_a_recipient_who_resumes_in_time_gets_it_and_nobody_is_told() -> None:
    service, bus, s, sockets, resume = await _room()
    alex = s["alex"].participant_id
    await bus.unsubscribe(alex, sockets["alex"])
    await service.disconnected(s["alex"])
    await service.chat(s["kim"], "hello", "k-1")
    # The page resumes with its resume token; the new socket is handed what was kept.
    joined = await service.join(s["alex"].claims, resume["alex"])
    assert joined.session.participant_id == alex and joined.message["resumed"]
    back = Socket()
    await bus.subscribe(alex, back)
    assert [m["text"] for m in back.of("chat")] == ["hello"]
    # Alex's grace timer runs out before that of a later drop (the same period), and does
    # nothing: once Kim's has, Alex's has too. (Kim's socket stays subscribed here, so that
    # what Kim is sent meanwhile is still seen.)
    await service.disconnected(s["kim"])
    await eventually(lambda: sockets["sam"].of("peer_left"), what="Kim's timeout")
    assert [m["participant"] for m in sockets["sam"].of("peer_left")] == [s["kim"].participant_id]
    room = await service.store.get("r")
    assert room is not None and room.participant(alex) is not None  # still in the room
    assert sockets["kim"].of("chat_undelivered") == []
    await service.close()


def test_a_chat_may_carry_the_senders_id() -> None:
    assert protocol.parse('{"type":"chat","text":"hi","id":"c-1"}') == protocol.Chat("hi", "c-1")
    assert protocol.parse('{"type":"chat","text":"hi"}').id == ""  # type: ignore[union-attr]
    for bad in ('"id":5', '"id":"' + "x" * 65 + '"'):
        with pytest.raises(BadMessage):
            protocol.parse('{"type":"chat","text":"hi",' + bad + "}")
