"""What every RoomStore must do, on every backend."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace

import pytest
import redis
import redis.asyncio as aioredis

from signaling.core import room_rules
from signaling.core.errors import Conflict, NotFound
from signaling.core.events import (
    Admission,
    NoticePosted,
    ParticipantAdmitted,
    RoomEvent,
    SessionEnded,
)
from signaling.core.model import Participant, ParticipantState, Role, RoomSettings, RoomState
from signaling.memory_store import MemoryRoomStore
from signaling.redis_store import room_texts
from signaling.store import RoomStore, StoredEvent
from tests.contract.conftest import Node, RedisNodes, StoreKeeping
from tests.redis_server import RedisServer

Events = tuple[RoomEvent, ...]


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
    result = await store.update("r1", lambda current: (room, (), current))
    assert result is None
    assert await store.get("r1") == room


async def test_writing_nothing_and_failing_write_nothing(node: Node) -> None:
    store, _ = node
    await store.update("r1", lambda current: (_room(), (), None))

    def refuse(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
        assert current is not None
        raise NotFound("no")

    with pytest.raises(NotFound):
        await store.update("r1", refuse)
    assert await store.update("r1", lambda current: (None, (), current)) == _room()


async def test_concurrent_updates_are_never_lost(node: Node) -> None:
    store, _ = node
    await store.update("r1", lambda current: (_room(), (), None))

    def add_x(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
        assert current is not None
        return replace(current, notice=current.notice + "x"), (), None

    await asyncio.gather(*(store.update("r1", add_x) for _ in range(40)))
    room = await store.get("r1")
    assert room is not None and room.notice == "x" * 40


async def test_stats_purge_and_rooms_of_a_node(node: Node) -> None:
    store, _ = node
    live = _room("live").with_participant(_person("t", Role.THERAPIST, ParticipantState.ADMITTED))
    live = live.with_participant(_person("c", Role.CLIENT, ParticipantState.WAITING))
    await store.update("live", lambda current: (live, (), None))
    ended = replace(_room("ended"), ended_at=150.0)
    await store.update("ended", lambda current: (ended, (), None))
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
    await store_a.update("r1", lambda current: (room, (), None))

    def admit_by(actor: str):  # type: ignore[no-untyped-def]
        def apply(current: RoomState | None) -> tuple[RoomState | None, Events, str]:
            change = room_rules.admit(room_rules.require_open(current), actor, "c", now=1.0)
            return change.room, (), actor

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
        await store_a.update("r1", lambda current: (room, (), None))  # back to waiting


async def test_keys_expire_with_the_retention(redis_nodes: RedisNodes) -> None:
    ((store, _bus),) = await redis_nodes(1)
    await store.update("r1", lambda current: (_room(), (), None))
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
        await store.update(room.id, lambda current, room=room: (room, (), None))  # type: ignore[misc]
    assert await store.purge(ended_before=0.0, idle_before=0.0, now=1000.0) == 1
    assert await store.get("expired") is None
    assert await store.get("valid") == valid
    assert await store.get("in-use") == in_use


async def test_rooms_are_listed_in_order_of_id_after_a_cursor(node: Node) -> None:
    store, _ = node
    for room_id in ("c", "a", "e", "b", "d"):
        await store.update(room_id, lambda current, i=room_id: (_room(i), (), None))  # type: ignore[misc]
    assert [r.id for r in await store.list_rooms(None, 2)] == ["a", "b"]
    assert [r.id for r in await store.list_rooms("b", 2)] == ["c", "d"]
    assert [r.id for r in await store.list_rooms("d", 10)] == ["e"]
    assert await store.list_rooms("e", 10) == []


async def test_an_api_room_is_kept_until_its_last_link_expires(redis_nodes: RedisNodes) -> None:
    ((store, _bus),) = await redis_nodes(1)
    thirty_days = 30 * 24 * 3600
    room = replace(_room(), expires_at=time.time() + thirty_days)
    await store.update("r1", lambda current: (room, (), None))
    redis = store._redis  # type: ignore[attr-defined]
    ttl = await redis.pttl(f"{store._prefix}:room:r1")  # type: ignore[attr-defined]
    assert ttl > thirty_days * 1000


async def test_a_rooms_texts_are_sealed_in_redis(
    redis_nodes: RedisNodes, redis_server: RedisServer
) -> None:
    (store, _), (other, _) = await redis_nodes(2)
    room = replace(_room(), notice="running late, my apologies")
    await store.update("r1", lambda current: (room, (), None))
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


# Room events: what a durable reader of the store observes through `events_after`.


async def _all_events(store: RoomStore, page: int = 1000) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    while batch := await store.events_after(out[-1].position if out else None, page):
        out += batch
    return out


def _in_order(positions: list[str]) -> bool:
    """Positions strictly increase: a sequence number (memory) or a stream id (Redis)."""
    keys = [tuple(int(part) for part in p.split("-")) for p in positions]
    return all(a < b for a, b in itertools.pairwise(keys))


def _counted(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
    """Adds one to the room's counter (the notice's length), with an event saying which
    count it read."""
    assert current is not None
    read = len(current.notice)
    return replace(current, notice=current.notice + "x"), (_count_event(read),), None


def _count_event(count: int) -> NoticePosted:
    return NoticePosted(room="r1", at=100.0 + count, by=f"n{count}")


async def test_committed_events_are_read_back_in_order(node: Node) -> None:
    store, _ = node
    assert await store.events_after(None, 10) == []
    first: Events = (
        NoticePosted(room="r1", at=1.0, by="t1"),
        ParticipantAdmitted(
            room="r1",
            at=2.0,
            participant="c",
            role=Role.CLIENT,
            via=Admission.BY_THERAPIST,
            by="t1",
        ),
    )
    second: Events = (
        SessionEnded(room="r1", at=3.0, by="t1", participants=("t1", "c"), disconnected=("c",)),
    )
    assert await store.update("r1", lambda current: (_room(), first, "one")) == "one"
    assert await store.update("r1", lambda current: (_room(now=101.0), second, "two")) == "two"
    stored = await store.events_after(None, 10)
    assert [s.event for s in stored] == [*first, *second]
    positions = [s.position for s in stored]
    assert len(set(positions)) == 3 and _in_order(positions)


async def test_no_events_are_committed_without_a_write(node: Node) -> None:
    store, _ = node
    await store.update("r1", lambda current: (_room(), (), None))
    event = NoticePosted(room="r1", at=1.0, by="t1")

    def refuse(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
        raise Conflict("no")

    with pytest.raises(Conflict):
        await store.update("r1", refuse)
    await store.update("r1", lambda current: (None, (), None))  # writes nothing
    await store.update("r1", lambda current: (current, (), None))  # the same room: nothing
    with pytest.raises(ValueError):
        await store.update("r1", lambda current: (None, (event,), None))
    with pytest.raises(ValueError):
        await store.update("r1", lambda current: (current, (event,), None))
    assert await store.events_after(None, 10) == []
    assert await store.get("r1") == _room()


async def test_each_committed_event_is_of_one_written_run(node: Node) -> None:
    store, _ = node
    await store.update("r1", lambda current: (_room(), (), None))
    runs = 0

    def count(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
        nonlocal runs
        runs += 1
        return _counted(current)

    await asyncio.gather(*(store.update("r1", count) for _ in range(40)))
    room = await store.get("r1")
    assert room is not None and len(room.notice) == 40
    # One event for each count 0..39 that a written run read: a run that lost the race read a
    # count that the run that won also read, so its event would show up twice.
    assert [s.event for s in await _all_events(store)] == [_count_event(i) for i in range(40)]
    assert runs >= 40


async def test_two_nodes_racing_commit_only_the_written_runs_events(
    redis_nodes: RedisNodes,
) -> None:
    (store_a, _), (store_b, _) = await redis_nodes(2)
    await store_a.update("r1", lambda current: (_room(), (), None))
    runs = 0

    def count(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
        nonlocal runs
        runs += 1
        return _counted(current)

    await asyncio.gather(
        *(store.update("r1", count) for _ in range(20) for store in (store_a, store_b))
    )
    room = await store_b.get("r1")
    assert room is not None and len(room.notice) == 40
    events = [s.event for s in await _all_events(store_a)]
    assert events == [_count_event(i) for i in range(40)]
    assert events == [s.event for s in await _all_events(store_b)]
    assert runs >= 40


async def test_a_run_that_lost_its_watch_adds_no_events(
    redis_nodes: RedisNodes, redis_server: RedisServer
) -> None:
    ((store, _),) = await redis_nodes(1)
    await store.update("r1", lambda current: (_room(), (), None))
    key = f"{store._prefix}:room:r1"  # type: ignore[attr-defined]
    other = redis.Redis.from_url(redis_server.url)  # another writer, between WATCH and EXEC
    runs = 0

    def count_once_raced(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
        nonlocal runs
        runs += 1
        if runs == 1:
            assert current is not None
            bumped = replace(current, notice=current.notice + "x")
            other.set(key, store._encode(bumped))  # type: ignore[attr-defined]
        return _counted(current)

    try:
        await store.update("r1", count_once_raced)
    finally:
        other.close()
    room = await store.get("r1")
    assert runs == 2 and room is not None and room.notice == "xx"
    assert [s.event for s in await store.events_after(None, 10)] == [_count_event(1)]


async def test_events_are_read_in_pages(node: Node) -> None:
    store, _ = node
    await store.update("r1", lambda current: (_room(), (), None))
    for _ in range(7):
        await store.update("r1", _counted)
    first = await store.events_after(None, 3)
    assert [s.event for s in first] == [_count_event(i) for i in range(3)]
    second = await store.events_after(first[-1].position, 3)
    assert [s.event for s in second] == [_count_event(i) for i in range(3, 6)]
    last = await store.events_after(second[-1].position, 3)
    assert [s.event for s in last] == [_count_event(6)]
    assert await store.events_after(last[-1].position, 3) == []
    assert _in_order([s.position for s in first + second + last])
    assert [s.event for s in await store.events_after(first[0].position, 1)] == [_count_event(1)]
    await store.update("r1", _counted)  # a later commit comes after the last read
    assert [s.event for s in await store.events_after(last[-1].position, 3)] == [_count_event(7)]


async def test_only_the_newest_events_are_kept(store_keeping: StoreKeeping) -> None:
    store = await store_keeping(10)
    await store.update("r1", lambda current: (_room(), (), None))
    for _ in range(200):  # 1000 events, five to a commit

        def five(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
            assert current is not None
            base = len(current.notice) * 5
            events = tuple(_count_event(base + i) for i in range(5))
            return replace(current, notice=current.notice + "x"), events, None

        await store.update("r1", five)
    kept = [s.event for s in await _all_events(store, page=100)]
    # Redis trims whole blocks of its stream, so it may keep more than asked; never them all.
    assert 10 <= len(kept) < 1000
    assert kept == [_count_event(i) for i in range(1000 - len(kept), 1000)]


async def test_a_small_log_drops_the_oldest_first(store_keeping: StoreKeeping) -> None:
    store = await store_keeping(5)
    await store.update("r1", lambda current: (_room(), (), None))
    await store.update("r1", _counted)
    (early,) = await store.events_after(None, 10)
    for _ in range(7):
        await store.update("r1", _counted)
    kept = await store.events_after(None, 100)
    if isinstance(store, MemoryRoomStore):
        assert [s.event for s in kept] == [_count_event(i) for i in range(3, 8)]
    else:  # approximate trimming: Redis drops the oldest only a whole block at a time
        assert kept == [early, *kept[1:]] and kept[-1].event == _count_event(7)
    # A reader that had read one since dropped goes on with the oldest kept after it.
    after_early = [s for s in kept if s.position != early.position]
    assert await store.events_after(early.position, 100) == after_early


async def test_the_event_stream_in_redis_holds_no_texts(
    redis_nodes: RedisNodes, redis_server: RedisServer
) -> None:
    ((store, _),) = await redis_nodes(1)
    await store.update("r1", lambda current: (_room(), (), None))

    def post(current: RoomState | None) -> tuple[RoomState | None, Events, None]:
        assert current is not None
        posted = replace(current, notice="running late, my apologies")
        return posted, (NoticePosted(room="r1", at=101.0, by="t1"),), None

    await store.update("r1", post)
    admin = aioredis.from_url(redis_server.url)
    try:
        held = repr(await admin.xrange(f"{store._prefix}:events"))  # type: ignore[attr-defined]
    finally:
        await admin.aclose()
    assert "notice_posted" in held and '"t1"' in held
    assert "apologies" not in held and "running late" not in held
    (stored,) = await store.events_after(None, 10)
    assert stored.event == NoticePosted(room="r1", at=101.0, by="t1")
