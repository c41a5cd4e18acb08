"""Sockets that go without a word: a dropped socket's place is held for the grace period,
then given up; a dead node's sockets count as dropped.

It subscribes to committed room events for the grace timers: every ParticipantReconnecting,
from whichever path, starts one on this node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from signaling.core import room_rules
from signaling.core.events import Committed, ParticipantReconnecting
from signaling.core.model import RoomState
from signaling.core.room_rules import Change
from signaling.room_changes import RoomChanges
from signaling.session import Session
from signaling.wire import Wire

log = logging.getLogger("sessionroom.rooms")


class Presence:
    def __init__(
        self,
        changes: RoomChanges,
        wire: Wire,
        *,
        grace_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self._changes = changes
        self._wire = wire
        self._grace = grace_seconds
        self.clock = clock
        self._timers: set[asyncio.Task[None]] = set()

    async def disconnected(self, s: Session) -> None:
        """The socket closed without `leave`: hold the place for the grace period."""
        await self._disconnect(s.room_id, s.participant_id, s.connection)

    async def node_lost(self, room_id: str, node: str) -> None:
        """Another node died: its sockets in this room are as good as dropped."""
        room = await self._changes.store.get(room_id)
        if room is None:
            return
        for p in room.participants:
            if p.node == node and p.connected:
                await self._disconnect(room_id, p.id, p.connection)

    async def _disconnect(self, room_id: str, participant_id: str, connection: int) -> None:
        async with self._changes.hold(room_id):
            now = self.clock()

            def rule(room: RoomState | None) -> Change | None:
                if room is None or room.ended:
                    return None
                return room_rules.disconnect(room, participant_id, connection, now)

            change = await self._changes.apply(room_id, rule)
            if change is None:
                room = await self._changes.store.get(room_id)
                if room is None or room.participant(participant_id) is None:
                    await self._wire.bus.discard(participant_id)
                return
            log.info(
                "participant disconnected", extra={"room": room_id, "participant": participant_id}
            )

    async def committed(self, batch: Committed) -> None:
        for e in batch.events:
            if isinstance(e, ParticipantReconnecting):
                task = asyncio.create_task(self._expire_later(e.room, e.participant, e.connection))
                self._timers.add(task)
                task.add_done_callback(self._timers.discard)

    async def _expire_later(self, room_id: str, participant_id: str, connection: int) -> None:
        await asyncio.sleep(self._grace)
        ids = {"room": room_id, "participant": participant_id}
        try:
            async with self._changes.hold(room_id):
                now = self.clock()

                def rule(room: RoomState | None) -> Change | None:
                    if room is None or room.ended:
                        return None
                    change = room_rules.expire(room, participant_id, connection, now=now)
                    return None if change is None else room_rules.follow_gate(change, now)

                if await self._changes.apply(room_id, rule) is not None:
                    log.info("grace period ran out", extra=ids)
                    log.info("participant left", extra={**ids, "reason": "timeout"})
        except Exception:
            log.exception("expiry failed", extra=ids)

    async def close(self) -> None:
        for task in list(self._timers):
            task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
