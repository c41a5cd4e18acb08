"""A therapist's request to record, everyone's answers, and stopping: moves of the consent
gate in the room's state. What follows from them (the ledger, the recording's start or cut,
what the room is told) is for the subscribers of their committed events."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace

from signaling.core import gate as recording_gate
from signaling.core import room_rules
from signaling.core.errors import NotAllowed, RecordingDisabled
from signaling.core.events import gate_events
from signaling.core.gate import GateChange, Reason
from signaling.core.model import Permission, RecordingMode, RoomState
from signaling.core.room_rules import Change
from signaling.recording_port import RecordingControl
from signaling.room_changes import RoomChanges
from signaling.session import Session

log = logging.getLogger("sessionroom.rooms")


class RecordingRequests:
    def __init__(
        self,
        changes: RoomChanges,
        recordings: RecordingControl,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._changes = changes
        self._recordings = recordings
        self.clock = clock

    async def request(self, s: Session) -> None:
        s.require(Permission.RECORD)
        async with self._changes.hold(s.room_id):
            now = self.clock()
            request_id = "q-" + secrets.token_urlsafe(6)

            def step(room: RoomState) -> GateChange:
                if (
                    room.settings.recording is not RecordingMode.CONSENT
                    or not self._recordings.available
                ):
                    raise RecordingDisabled()
                room_rules.require_therapist(room, s.participant_id)
                return recording_gate.request(
                    room.recording,
                    by=s.participant_id,
                    present=tuple(p.id for p in room.admitted),
                    request_id=request_id,
                    now=now,
                    new_recording=recording_gate.new_recording_id(now),
                )

            await self._move(s.room_id, step, now, requested=True)
            log.info("recording requested", extra={**s.ids, "request": request_id})

    async def consent(self, s: Session, request_id: str, granted: bool) -> None:
        s.require(Permission.CONSENT)
        async with self._changes.hold(s.room_id):
            now = self.clock()

            def step(room: RoomState) -> GateChange:
                me = room.participant(s.participant_id)
                if me is None or not me.in_room:
                    raise NotAllowed("You are not in the room.")
                return recording_gate.answer(
                    room.recording,
                    participant=s.participant_id,
                    request_id=request_id,
                    granted=granted,
                    now=now,
                    new_recording=recording_gate.new_recording_id(now),
                )

            await self._move(s.room_id, step, now, answered=(s.participant_id, granted))
            log.info("recording consent", extra={**s.ids, "granted": granted})

    async def stop(self, s: Session) -> None:
        s.require(Permission.RECORD)
        async with self._changes.hold(s.room_id):
            now = self.clock()

            def step(room: RoomState) -> GateChange:
                room_rules.require_therapist(room, s.participant_id)
                return recording_gate.stop(room.recording, by=s.participant_id, now=now)

            await self._move(s.room_id, step, now)

    async def shut_all(self, reason: Reason) -> None:
        """This node stops: the recordings it writes stop first, for `reason`."""
        for room_id in sorted(self._recordings.rooms_recording):
            async with self._changes.hold(room_id):
                await self._changes.apply(room_id, _shut(reason, self.clock()))

    async def _move(
        self,
        room_id: str,
        step: Callable[[RoomState], GateChange],
        now: float,
        *,
        requested: bool = False,
        answered: tuple[str, bool] | None = None,
    ) -> None:
        """Apply a gate transition to an open room, atomically, with its events."""

        def apply(current: RoomState | None) -> Change:
            room = room_rules.require_open(current)
            moved = step(room)
            room = replace(room, recording=moved.gate)
            events = gate_events(room, moved, now, requested=requested, answered=answered)
            return Change(room, gate=moved, events=events)

        change = await self._changes.apply(room_id, apply)
        assert change is not None
        gate = change.room.recording
        log.info(
            "recording state",
            extra={"room": room_id, "state": str(gate.status), "recording": gate.recording},
        )


def _shut(reason: Reason, now: float) -> Callable[[RoomState | None], Change | None]:
    def shut(current: RoomState | None) -> Change | None:
        if current is None:
            return None
        moved = recording_gate.shut(current.recording, reason=reason, now=now)
        if moved is None:
            return None
        room = replace(current, recording=moved.gate)
        return Change(room, gate=moved, events=gate_events(room, moved, now))

    return shut
