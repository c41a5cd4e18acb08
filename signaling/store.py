"""RoomStore: where room and participant state lives, with atomic transitions.

One implementation per backend (memory_store, redis_store), chosen in backends.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from signaling.core.events import RoomEvent
from signaling.core.model import RoomState

T = TypeVar("T")

# A pure function from the current room (None if there is none) to the room to write (None
# to write nothing), the events that change implies, and a result for the caller. It may run
# more than once; only the run that is written has its events committed, with the room, in
# one transaction. A run that writes nothing returns no events.
Mutation = Callable[[RoomState | None], tuple[RoomState | None, tuple[RoomEvent, ...], T]]

# Committed events kept for readers (`events_after`), the oldest dropped first.
EVENTS_KEPT = 100_000


@dataclass(frozen=True)
class StoredEvent:
    # Where it is in the store's event log: an opaque cursor for `events_after`, in commit
    # order (not to be compared as strings: Redis stream ids do not sort that way).
    position: str
    event: RoomEvent


@dataclass(frozen=True)
class StoreStats:
    rooms: int
    waiting: int
    participants: int


class RoomStore(Protocol):
    async def get(self, room_id: str) -> RoomState | None: ...

    async def update(self, room_id: str, mutate: Mutation[T]) -> T:
        """Apply `mutate` atomically: no other update of this room interleaves, and its events
        are committed with the room or not at all."""
        ...

    async def events_after(self, position: str | None, limit: int) -> list[StoredEvent]:
        """Up to `limit` committed events of every room, in commit order, those after
        `position` (None: from the oldest kept)."""
        ...

    async def stats(self) -> StoreStats: ...

    async def purge(self, ended_before: float, idle_before: float, now: float) -> int:
        """Forget rooms ended before `ended_before`; rooms opened by a link, not ended, that
        nobody is in now (admitted or waiting) and that were opened before `idle_before`
        (how long they have been empty is not looked at); and API rooms, not ended, that
        nobody is in and whose last link expired before `now`. Returns how many went."""
        ...

    async def list_rooms(self, after: str | None, limit: int) -> list[RoomState]:
        """Up to `limit` rooms in order of id, those after `after` (a page of a listing)."""
        ...

    async def rooms_of_node(self, node: str) -> list[str]:
        """Rooms where `node` held sockets (for taking over a dead node's participants)."""
        ...

    async def forget_node(self, node: str, room_ids: list[str]) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
