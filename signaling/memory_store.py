"""The in-memory RoomStore: the embedded default for one process."""

from __future__ import annotations

from collections import deque
from itertools import islice

from signaling.core.model import RoomState
from signaling.store import EVENTS_KEPT, Mutation, StoredEvent, StoreStats, T


class MemoryRoomStore:
    def __init__(self, *, events_kept: int = EVENTS_KEPT) -> None:
        self._rooms: dict[str, RoomState] = {}
        # The rooms whose last write left nobody in them, each with the time it was opened
        # (or ended): what `purge` compares with `idle_before`, as the Redis store compares
        # an empty room's `created_at`.
        self._empty_since: dict[str, float] = {}
        # The committed events, oldest first, the oldest dropped beyond `events_kept`.
        self._events: deque[StoredEvent] = deque(maxlen=events_kept)
        self._sequence = 0

    async def get(self, room_id: str) -> RoomState | None:
        return self._rooms.get(room_id)

    async def update(self, room_id: str, mutate: Mutation[T]) -> T:
        # No await between read and write: on one event loop this is atomic.
        current = self._rooms.get(room_id)
        new, events, result = mutate(current)
        if new is None or new is current:
            if events:
                raise ValueError("a mutation that writes nothing returned events")
            return result
        self._rooms[room_id] = new
        if new.participants:
            self._empty_since.pop(room_id, None)
        else:
            self._empty_since.setdefault(room_id, new.ended_at or new.created_at)
        for event in events:
            self._sequence += 1
            self._events.append(StoredEvent(f"{self._sequence:020d}", event))
        return result

    async def events_after(self, position: str | None, limit: int) -> list[StoredEvent]:
        if limit <= 0 or not self._events:
            return []
        # Positions are consecutive zero-padded sequence numbers, the oldest kept first: the
        # first one after `position` is found by its number.
        start = 0
        if position is not None:
            start = max(0, int(position) + 1 - int(self._events[0].position))
        return list(islice(self._events, start, start + limit))

    async def stats(self) -> StoreStats:
        live = [r for r in self._rooms.values() if not r.ended]
        return StoreStats(
            rooms=len(live),
            waiting=sum(len(r.waiting) for r in live),
            participants=sum(len(r.participants) for r in live),
        )

    async def purge(self, ended_before: float, idle_before: float, now: float) -> int:
        gone = [
            room_id
            for room_id, room in self._rooms.items()
            if (room.ended_at is not None and room.ended_at < ended_before)
            or (
                room.origin == "link"
                and not room.ended
                and self._empty_since.get(room_id, float("inf")) < idle_before
            )
            or room.unused_after(now)
        ]
        for room_id in gone:
            del self._rooms[room_id]
            self._empty_since.pop(room_id, None)
        return len(gone)

    async def list_rooms(self, after: str | None, limit: int) -> list[RoomState]:
        ids = sorted(i for i in self._rooms if after is None or i > after)
        return [self._rooms[i] for i in ids[:limit]]

    async def rooms_of_node(self, node: str) -> list[str]:
        return sorted(
            room_id
            for room_id, room in self._rooms.items()
            if any(p.node == node and p.connected for p in room.participants)
        )

    async def forget_node(self, node: str, room_ids: list[str]) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._rooms.clear()
        self._empty_since.clear()
        self._events.clear()
