"""What every RoomStore must do, on every backend."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from signaling import room_rules
from signaling.errors import Conflict, NotFound
from signaling.model import Participant, ParticipantState, Role, RoomSettings, RoomState
from signaling.redis_store import room_texts
from tests.contract.conftest import Node, RedisNodes
from tests.redis_server import RedisServer


def _room(room_id: str = "r1", now: float = 100.0) -> RoomState:
    return RoomState(id=room_id, settings=RoomSettings(max_clients=2), created_at=now, origin="api")


def _person(pid: str, role: Role, state: ParticipantState, node: str = "node-0") -> Participant:
    return Participant(
        id=pid,
        role=role,
        identity=pid,
        display_name=pid.upper(),
        state=state,
        link_id="link-" + pid,
        resume_hash="h",
        joined_at=100.0,
        node=node,
        waiting_since=100.0 if state is ParticipantState.WAITING else None,
    )


async def test_a_room_round_trips(node: Node) -> None:
    store, _ = node
    assert await store.get("r1") is None
    room = _room().with_participant(_person("t", Role.THERAPIST, ParticipantState.ADMITTED))
    result = await store.update("r1", lambda current: (room, current))
    assert result is None
    assert await store.get("r1") == room


async def test_writing_nothing_and_failing_write_nothing(node: Node) -> None:
    store, _ = node
    await store.update("r1", lambda current: (_room(), None))

    def refuse(current: RoomState | None) -> tuple[RoomState | None, None]:
        assert current is not None
        raise NotFound("no")

    with pytest.raises(NotFound):
        await store.update("r1", refuse)
    assert await store.update("r1", lambda current: (None, current)) == _room()


async def test_concurrent_updates_are_never_lost(node: Node) -> None:
    store, _ = node
    await store.update("r1", lambda current: (_room(), None))

    def add_x(current: RoomState | None) -> tuple[RoomState | None, None]:
        assert current is not None
        return replace(current, notice=current.notice + "x"), None

    await asyncio.gather(*(store.update("r1", add_x) for _ in range(40)))
    room = await store.get("r1")
    assert room is not None and room.notice == "x" * 40


async def test_stats_purge_and_rooms_of_a_node(node: Node) -> None:
    store, _ = node
    live = _room("live").with_participant(_person("t", Role.THERAPIST, ParticipantState.ADMITTED))
    live = live.with_participant(_person("c", Role.CLIENT, ParticipantState.WAITING))
    await store.update("live", lambda current: (live, None))
    ended = replace(_room("ended"), ended_at=150.0)
    await store.update("ended", lambda current: (ended, None))
    stats = await store.stats()
    assert (stats.rooms, stats.waiting, stats.participants) == (1, 1, 2)
    assert await store.rooms_of_node("node-0") == ["live"]
    assert await store.purge(ended_before=200.0, idle_before=0.0, now=0.0) == 1
    assert await store.get("ended") is None
    assert await store.get("live") == live


async def test_two_nodes_admitting_the_same_client_get_one_outcome(
    redis_nodes: RedisNodes,
) -> None:
    (store_a, _), (store_b, _) = await redis_nodes(2)
    room = _room()
    for p in (
        _person("t1", Role.THERAPIST, ParticipantState.ADMITTED, "node-0"),
        _person("t2", Role.THERAPIST, ParticipantState.ADMITTED, "node-1"),
        _person("c", Role.CLIENT, ParticipantState.WAITING, "node-1"),
    ):
        room = room.with_participant(p)
    await store_a.update("r1", lambda current: (room, None))

    def admit_by(actor: str):  # type: ignore[no-untyped-def]
        def apply(current: RoomState | None) -> tuple[RoomState | None, str]:
            change = room_rules.admit(room_rules.require_open(current), actor, "c")
            return change.room, actor

        return apply

    for _ in range(10):  # many rounds, so that the two really race
        results = await asyncio.gather(
            store_a.update("r1", admit_by("t1")),
            store_b.update("r1", admit_by("t2")),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, str)]
        losers = [r for r in results if isinstance(r, Conflict)]
        assert len(winners) == 1 and len(losers) == 1, results
        after = await store_a.get("r1")
        assert after is not None
        client = after.participant("c")
        assert client is not None and client.state is ParticipantState.ADMITTED
        await store_a.update("r1", lambda current: (room, None))  # back to waiting


async def test_keys_expire_with_the_retention(redis_nodes: RedisNodes) -> None:
    ((store, _bus),) = await redis_nodes(1)
    await store.update("r1", lambda current: (_room(), None))
    redis = store._redis  # type: ignore[attr-defined]
    ttl = await redis.pttl(f"{store._prefix}:room:r1")  # type: ignore[attr-defined]
    assert 0 < ttl <= 24 * 3600 * 1000


async def test_unused_api_rooms_go_when_their_last_link_expires(node: Node) -> None:
    store, _ = node
    expired = replace(_room("expired"), expires_at=500.0)
    valid = replace(_room("valid"), expires_at=5000.0)
    in_use = replace(_room("in-use"), expires_at=500.0).with_participant(
        _person("t", Role.THERAPIST, ParticipantState.ADMITTED)
    )
    for room in (expired, valid, in_use):
        await store.update(room.id, lambda current, room=room: (room, None))  # type: ignore[misc]
    assert await store.purge(ended_before=0.0, idle_before=0.0, now=1000.0) == 1
    assert await store.get("expired") is None
    assert await store.get("valid") == valid
    assert await store.get("in-use") == in_use


async def test_rooms_are_listed_in_order_of_id_after_a_cursor(node: Node) -> None:
    store, _ = node
    for room_id in ("c", "a", "e", "b", "d"):
        await store.update(room_id, lambda current, i=room_id: (_room(i), None))  # type: ignore[misc]
    assert [r.id for r in await store.list_rooms(None, 2)] == ["a", "b"]
    assert [r.id for r in await store.list_rooms("b", 2)] == ["c", "d"]
    assert [r.id for r in await store.list_rooms("d", 10)] == ["e"]
    assert await store.list_rooms("e", 10) == []


async def test_an_api_room_is_kept_until_its_last_link_expires(redis_nodes: RedisNodes) -> None:
    ((store, _bus),) = await redis_nodes(1)
    thirty_days = 30 * 24 * 3600
    room = replace(_room(), expires_at=time.time() + thirty_days)
    await store.update("r1", lambda current: (room, None))
    redis = store._redis  # type: ignore[attr-defined]
    ttl = await redis.pttl(f"{store._prefix}:room:r1")  # type: ignore[attr-defined]
    assert ttl > thirty_days * 1000


async def test_a_rooms_texts_are_sealed_in_redis(
    redis_nodes: RedisNodes, redis_server: RedisServer
) -> None:
    (store, _), (other, _) = await redis_nodes(2)
    room = replace(_room(), notice="running late, my apologies")
    await store.update("r1", lambda current: (room, None))
    admin = aioredis.from_url(redis_server.url)
    try:
        held = repr([await admin.get(k) for k in await admin.keys("*:room:*")])
    finally:
        await admin.aclose()
    assert '"r1"' in held and "apologies" not in held
    fetched = await other.get("r1")  # another node with the same secret reads it
    assert fetched is not None and fetched.notice == "running late, my apologies"
    ((stranger, _),) = await redis_nodes(1, secret="a-different-secret-that-is-long-enough-1")
    foreign = await stranger.get("r1")  # another secret: the text is lost, the room is not
    assert foreign is not None and foreign.notice == "" and foreign.id == "r1"


def test_room_texts_seals_the_notice_and_each_denial_message() -> None:
    data = {
        "id": "r1",
        "notice": "n",
        "denied": [["p1", "old form"], {"participant": "p2", "name": "Alex", "message": "m"}],
    }
    out = room_texts(data, lambda text, room_id: f"<{room_id}:{text}>")
    assert out["notice"] == "<r1:n>"
    assert out["denied"] == [
        ["p1", "<r1:old form>"],
        {"participant": "p2", "name": "Alex", "message": "<r1:m>"},
    ]
    assert data["notice"] == "n"  # the input is left as it was
