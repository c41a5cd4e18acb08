"""What those in a room send each other through the server: WebRTC signals, chat, and a
browser's recording leg offered to this node. Nothing here changes the room."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any

from signaling import messages
from signaling.admission import refusal
from signaling.core.errors import (
    NotAllowed,
    NotFound,
    RecordingCodecUnsupported,
    RecordingNotActive,
    RoomEnded,
    StateLost,
)
from signaling.core.gate import Status
from signaling.core.model import ParticipantState, Permission, RoomState
from signaling.recording_port import RecordingControl
from signaling.session import Session
from signaling.store import RoomStore
from signaling.wire import Wire


class Relay:
    def __init__(
        self,
        store: RoomStore,
        wire: Wire,
        recordings: RecordingControl,
        *,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self._wire = wire
        self._recordings = recordings
        self.clock = clock

    async def signal(self, s: Session, to: str, data: Mapping[str, Any]) -> None:
        s.require(Permission.SIGNAL)
        room = await self.admitted_room(s)
        target = room.participant(to)
        if (
            target is None
            or target.state is not ParticipantState.ADMITTED
            or to == s.participant_id
        ):
            raise NotFound("No such participant in this room.")
        await self._wire.send(to, messages.signal(s.participant_id, data))

    async def chat(self, s: Session, text: str, chat_id: str = "") -> None:
        s.require(Permission.CHAT)
        room = await self.admitted_room(s)
        message = messages.chat(
            s.participant_id,
            text,
            self.clock(),
            # The sender's own id for this message (a new one if it gave none): a recipient
            # who never gets it is named back to the sender with it (`chat_undelivered`).
            chat_id or "c-" + secrets.token_urlsafe(6),
        )
        await self._wire.send_many(
            (p.id for p in room.admitted if p.id != s.participant_id), message
        )

    async def recording_offer(self, s: Session, recording_id: str, sdp: str) -> None:
        """A browser's recording leg: answered with `rec_answer`, or refused."""
        room = await self.admitted_room(s)
        if room.recording.status is not Status.RECORDING:
            raise RecordingNotActive()
        try:
            answer = await self._recordings.offer(room, s.participant_id, recording_id, sdp)
        except RecordingCodecUnsupported as e:
            # Recording goes on for the others; the therapist must know whose part is missing.
            await self._wire.send_many(
                (t.id for t in room.therapists if t.id != s.participant_id),
                messages.recording_issue(s.participant_id, e.code),
            )
            raise
        await self._wire.send(s.participant_id, messages.rec_answer(recording_id, answer))

    async def admitted_room(self, s: Session) -> RoomState:
        """The room of a participant in it, or the error that tells the socket why not."""
        room = await self._store.get(s.room_id)
        if room is None:
            # An open socket's room can only vanish with the store's data (a Redis that kept
            # nothing across a restart): the page reconnects and joins afresh.
            raise StateLost()
        if room.ended:
            raise RoomEnded()
        me = room.participant(s.participant_id)
        if me is None:
            denial = room.denial(participant=s.participant_id)
            if denial is not None:
                # Turned away on another node, its `denied` still on the way over the bus:
                # the refusal a resume would get, not a lost state (found by bench/fuzz.py).
                raise refusal(denial)
            # Likewise a room opened afresh by someone else after such a loss: it has never
            # heard of this socket's participant.
            raise StateLost()
        if me.state is not ParticipantState.ADMITTED:
            raise NotAllowed("You are not in the room yet.")
        return room
