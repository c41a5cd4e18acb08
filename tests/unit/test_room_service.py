"""RoomService with the memory store and a recording bus: outcomes under contention."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from signaling.bus import Envelope
from signaling.core.errors import Conflict, NotFound, SessionroomError
from signaling.core.model import Role
from signaling.memory_bus import MemoryMessageBus
from signaling.memory_store import MemoryRoomStore
from signaling.rooms import RoomService, Session
from tests.polling import eventually
from tests.support import make_keys, mint


class RecordingBus(MemoryMessageBus):
    """A bus that only records what was sent to whom (this module's own test double)."""

    def __init__(self) -> None:
        super().__init__("n")
        self.sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.order: list[tuple[str, str]] = []  # (to, type) across everyone, as published

    async def publish(self, envelope: Envelope) -> None:
        await asyncio.sleep(0)  # let other tasks interleave, as a network bus would
        if envelope.payload is not None:
            self.sent[envelope.to].append(dict(envelope.payload))
            self.order.append((envelope.to, envelope.payload["type"]))

    def types(self, pid: str) -> list[str]:
        return [m["type"] for m in self.sent[pid]]


async def _setup(therapists: int = 2) -> tuple[RoomService, RecordingBus, list[Session], Session]:
    keys = make_keys()
    bus = RecordingBus()
    service = RoomService(MemoryRoomStore(), bus, keys, grace_seconds=5)
    ts = []
    for i in range(therapists):
        claims = keys.verify(mint(keys, "r", Role.THERAPIST, f"T{i}"))
        ts.append((await service.join(claims, None)).session)
    client = (await service.join(keys.verify(mint(keys, "r")), None)).session
    return service, bus, ts, client


async def _outcome(coro: Any) -> str:
    try:
        await coro
        return "ok"
    except SessionroomError as e:
        return e.code


async def test_two_admits_at_once_one_outcome() -> None:
    service, bus, (t1, t2), client = await _setup()
    results = await asyncio.gather(
        _outcome(service.admit(t1, client.participant_id)),
        _outcome(service.admit(t2, client.participant_id)),
    )
    assert sorted(results) == [Conflict.code, "ok"]
    assert bus.types(client.participant_id).count("admitted") == 1
    room = await service.store.get("r")
    assert room is not None and len(room.admitted) == 3


async def test_those_in_the_room_hear_of_a_newcomer_before_it_is_let_in() -> None:
    # The newcomer's first signals follow its `admitted`; a peer that got them before its
    # `peer_joined` would wait for an offer instead of making one, and the call would stay
    # silent. Over Redis, one node's publishes arrive in the order they were made.
    service, bus, (t1, t2), client = await _setup()
    await service.admit(t1, client.participant_id)
    admitted = bus.order.index((client.participant_id, "admitted"))
    for t in (t1, t2):
        assert bus.order.index((t.participant_id, "peer_joined")) < admitted, bus.order


async def test_leaving_while_being_admitted_is_one_or_the_other() -> None:
    for order in range(2):
        service, bus, (t1,), client = await _setup(therapists=1)
        admit = _outcome(service.admit(t1, client.participant_id))
        leave = _outcome(service.leave(client))
        results = await asyncio.gather(*((admit, leave) if order else (leave, admit)))
        room = await service.store.get("r")
        assert room is not None and room.participant(client.participant_id) is None
        told = bus.types(t1.participant_id)
        if results[0 if order else 1] == "ok" and "peer_joined" in told:
            # Admitted first, then left: the therapist saw both, in that order.
            assert told.index("peer_joined") < told.index("peer_left")
        else:
            assert results[0 if order else 1] in (NotFound.code, Conflict.code)
            assert "peer_joined" not in told


async def test_expiry_after_grace_tells_the_peers() -> None:
    keys = make_keys()
    bus = RecordingBus()
    service = RoomService(MemoryRoomStore(), bus, keys, grace_seconds=0.05)
    t = (await service.join(keys.verify(mint(keys, "r", Role.THERAPIST, "T")), None)).session
    c = (await service.join(keys.verify(mint(keys, "r")), None)).session
    await service.admit(t, c.participant_id)
    await service.disconnected(c)
    assert bus.types(t.participant_id)[-1] == "peer_reconnecting"
    await eventually(lambda: bus.types(t.participant_id)[-1] != "peer_reconnecting")
    assert bus.sent[t.participant_id][-1] == {
        "type": "peer_left",
        "participant": c.participant_id,
        "reason": "timeout",
    }
    await service.close()
