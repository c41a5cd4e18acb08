"""The protocol fuzz's own parts (bench/fuzz.py): the cross-room check, and a generator
that repeats with its seed and whose valid messages are valid."""

from __future__ import annotations

import random
from typing import Any

from bench.fuzz import MessageGenerator, View, find_cross_room, named_ids
from signaling import protocol
from signaling.core.model import Role

ROOM_OF = {"me": "r1", "peer": "r1", "other": "r2"}
ROOMS = {"r1", "r2"}


def _view(role: Role = Role.THERAPIST) -> View:
    return View(
        room="r1",
        role=role,
        token="a.b.c",
        me="me",
        in_room=True,
        peers={"peer"},
        waiting=["waiting"],
        request="q-1",
        recording="rec-1",
    )


def _generator(seed: int) -> MessageGenerator:
    return MessageGenerator(random.Random(seed), lambda room: "other")


def test_ids_of_another_room_are_cross_room_deliveries() -> None:
    flagged: list[dict[str, Any]] = [
        {"type": "signal", "from": "other", "data": {}},
        {"type": "peer_joined", "participant": {"id": "other", "role": "client", "name": "A"}},
        {"type": "recording_state", "answers": {"me": True, "other": None}},
        {"type": "lobby", "waiting": [{"id": "other", "name": "B", "connected": True}]},
        {"type": "joined", "room": {"id": "r2"}},
    ]
    found = find_cross_room(ROOM_OF, ROOMS, [("r1", flagged)])
    assert len(found) == len(flagged), found
    # A socket that never joined has no room: any id is someone else's.
    assert find_cross_room(ROOM_OF, ROOMS, [("", [{"type": "lobby_notice", "by": "me"}])])


def test_free_text_relayed_data_and_own_ids_are_not() -> None:
    fine: list[dict[str, Any]] = [
        {"type": "signal", "from": "peer", "data": {"to": "other", "room": "r2"}},
        {"type": "chat", "from": "peer", "text": "other r2", "at": 1.0},
        {"type": "denied", "message": "other"},
        {"type": "error", "code": "not_found", "message": "Unknown message type 'other'."},
        {"type": "consent_request", "by": {"id": "peer", "name": "other"}, "where": "r2"},
        {"type": "joined", "participant": {"id": "me"}, "room": {"id": "r1"}, "resume": "x"},
    ]
    assert find_cross_room(ROOM_OF, ROOMS, [("r1", fine)]) == []
    assert "other" not in set(named_ids(fine[0]))


def test_the_generator_repeats_with_its_seed() -> None:
    def frames(seed: int) -> list[bytes]:
        generator = _generator(seed)
        return [f.data for _ in range(300) for f in generator.frames(_view())]

    assert frames(5) == frames(5)
    assert frames(5) != frames(6)


def test_valid_messages_parse() -> None:
    for role in Role:
        generator = _generator(1)
        for _ in range(500):
            frame = generator.valid(_view(role))
            inbound = protocol.parse(frame.data.decode())
            assert protocol.message_type(inbound) == frame.kind
