"""Applying a pure room rule: through the store, then to the subscribers of its events.

The store commits the rule's next state and its events together (signaling/store.py);
after the commit the dispatcher hands the events to the subscribers. One operation per room
at a time on this node (`hold`), from its store transition through its messages, so that
everyone sees a room's events in the order they happened.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from signaling.core.events import Committed, RoomEvent
from signaling.core.model import RoomState
from signaling.core.room_rules import Change
from signaling.dispatch import Dispatcher
from signaling.keyed_lock import KeyedLock
from signaling.store import RoomStore

log = logging.getLogger("sessionroom.rooms")

Rule = Callable[[RoomState | None], Change | None]


class RoomChanges:
    def __init__(self, store: RoomStore, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self._serial = KeyedLock()

    @asynccontextmanager
    async def hold(self, room_id: str) -> AsyncIterator[None]:
        async with self._serial.hold(room_id):
            yield

    async def apply(self, room_id: str, rule: Rule) -> Change | None:
        """Commit what `rule` makes of the room (None: nothing to do), then dispatch its
        events. The caller holds the room (`hold`). The rule may run more than once under
        contention; only the committed run's events are dispatched."""

        def mutation(
            current: RoomState | None,
        ) -> tuple[RoomState | None, tuple[RoomEvent, ...], Change | None]:
            change = rule(current)
            if change is None:
                return None, (), None
            return change.room, change.events, change

        change = await self.store.update(room_id, mutation)
        if change is not None:
            await self.dispatcher.dispatch(Committed(change.room, change.events))
        return change
