"""The wire: what participants are told, over the bus to wherever their sockets are.

As a subscriber of committed room events it turns each batch into the WebSocket messages
the participants concerned must see (built in messages.py), in an order each of them can
rely on: what happened to participants first, in the order it happened; then the therapists'
lobby, once; then the waiting room's news of therapists; then the recording's state and any
consent question. The room service also sends through it what is not a room event: replies
and relays (signals, chat, a link in use).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from signaling import messages
from signaling.bus import Envelope, MessageBus
from signaling.core.events import (
    GATE_EVENTS,
    Admission,
    Committed,
    ConsentAsked,
    NoticePosted,
    ParticipantAdmitted,
    ParticipantAllowed,
    ParticipantDenied,
    ParticipantLeft,
    ParticipantReconnecting,
    ParticipantResumed,
    ParticipantWaiting,
    RecordingRequested,
    SessionEnded,
)
from signaling.core.model import Denial, Role, RoomState

log = logging.getLogger("sessionroom.rooms")

CLOSE_NORMAL = 1000
CLOSE_REPLACED = 4001  # another socket of the same participant took over

REPLACED_BY_DEVICE = "This session continued on another device."
REPLACED_BY_CONNECTION = "This session continued on another connection."


class Wire:
    def __init__(self, bus: MessageBus, *, recordings_where: str = "") -> None:
        self.bus = bus
        self._recordings_where = recordings_where

    # ---- sending ----

    async def send(
        self,
        to: str,
        payload: Mapping[str, Any],
        *,
        close_code: int | None = None,
        close_reason: str = "",
        connection: int | None = None,
    ) -> None:
        """To one participant's socket (`connection`: that one only, if it is still it)."""
        await self.bus.publish(
            Envelope(
                to=to,
                origin=self.bus.node_id,
                payload=payload,
                close_code=close_code,
                close_reason=close_reason,
                connection=connection,
            )
        )

    async def send_many(self, to: Iterable[str], payload: Mapping[str, Any]) -> None:
        for pid in to:
            await self.send(pid, payload)

    async def forget(self, room: RoomState, participant: str) -> None:
        """Drop what the bus kept for a participant who is gone; each sender still in the
        room of a chat kept for it is told, once per message, that it never arrived."""
        for envelope in await self.bus.discard(participant):
            payload = envelope.payload or {}
            sender = payload.get("from")
            if payload.get("type") != "chat" or not isinstance(sender, str):
                continue
            if room.participant(sender) is None:
                continue  # the sender has gone too: nobody to tell
            log.info("chat not delivered", extra={"room": room.id, "participant": participant})
            await self.send(sender, messages.chat_undelivered(payload.get("id"), participant))

    # ---- committed room events ----

    async def committed(self, batch: Committed) -> None:
        room = batch.room
        events = batch.events
        ended = any(isinstance(e, SessionEnded) for e in events)
        came_in = {e.participant for e in events if isinstance(e, ParticipantAdmitted)}
        lobby = presence = gate_moved = False
        asked: list[str] = []
        ask_again: list[str] = []
        denial: Denial | None = None
        for e in events:
            if isinstance(e, ParticipantWaiting | ParticipantAllowed):
                lobby = True
            elif isinstance(e, ParticipantAdmitted):
                await self._admitted(room, e)
                lobby = lobby or e.via is not Admission.ON_JOIN
                presence = presence or (e.role is Role.THERAPIST and len(room.therapists) == 1)
            elif isinstance(e, ParticipantDenied):
                # A new device turned away with its link's holder comes right after it in
                # the same change, and hears the holder's words.
                denial = room.denial(participant=e.participant) or denial
                await self.send(
                    e.participant,
                    messages.denied(denial.message if denial else ""),
                    close_code=CLOSE_NORMAL,
                    close_reason="denied",
                )
                await self.bus.discard(e.participant)
                lobby = True
            elif isinstance(e, ParticipantLeft):
                await self._left(room, e, came_in)
                lobby = lobby or not e.was_in_room
                presence = presence or (
                    e.was_in_room and e.role is Role.THERAPIST and not room.therapist_present
                )
            elif isinstance(e, ParticipantReconnecting):
                if e.was_in_room:
                    await self.send_many(
                        _others(room, e.participant), messages.peer_reconnecting(e.participant)
                    )
                else:
                    lobby = True
            elif isinstance(e, ParticipantResumed):
                if e.open_connection is not None:
                    # The old socket may still look alive (a network change): close it.
                    await self._close_replaced(e.participant, e.open_connection, connection=True)
                if not e.in_room:
                    lobby = True
                else:
                    if e.open_connection is None:
                        await self.send_many(
                            _others(room, e.participant), messages.peer_resumed(e.participant)
                        )
                    if room.recording.awaits(e.participant):
                        # Back with a question still open: ask again.
                        ask_again.append(e.participant)
            elif isinstance(e, NoticePosted):
                await self.send_many(
                    (p.id for p in room.waiting), messages.lobby_notice(room.notice)
                )
            elif isinstance(e, SessionEnded):
                for pid in e.participants:
                    await self.send(
                        pid, messages.ended(e.by), close_code=CLOSE_NORMAL, close_reason="ended"
                    )
                    if pid in e.disconnected:
                        # Nobody resumes into an ended room: drop what was kept for them.
                        await self.bus.discard(pid)
            elif isinstance(e, GATE_EVENTS):
                gate_moved = True
                if isinstance(e, RecordingRequested):
                    asked += e.asked
                elif isinstance(e, ConsentAsked):
                    asked.append(e.participant)
        if lobby:
            await self.send_many((t.id for t in room.therapists), messages.lobby(room))
        if presence:
            await self.send_many(
                (p.id for p in room.waiting), messages.waiting_status(room.therapist_present)
            )
        if ended:
            return  # everyone was told `ended`: no recording state for a closed socket
        in_room = {p.id for p in room.admitted}
        if gate_moved:
            await self.send_many(in_room, messages.recording_state(room.recording))
            ask_again = [p for p in ask_again if p not in asked]
        question = [p for p in (*asked, *ask_again) if p in in_room]
        if question:
            await self.send_many(question, messages.consent_request(room, self._recordings_where))

    async def _admitted(self, room: RoomState, e: ParticipantAdmitted) -> None:
        me = room.participant(e.participant)
        if me is None:
            return
        peers = [p for p in room.admitted if p.id != me.id]
        # Those in the room hear of the newcomer first: its first signals follow its
        # `admitted`, and must not reach a peer who does not yet know it joined after them
        # (that peer makes the offer). Over Redis, a node's sends arrive in order.
        await self.send_many((p.id for p in peers), messages.peer_joined(me))
        if e.via is not Admission.ON_JOIN:
            # One who joins straight into the room has its peers in `joined`.
            await self.send(me.id, messages.admitted(peers))

    async def _left(self, room: RoomState, e: ParticipantLeft, came_in: set[str]) -> None:
        if e.open_connection is not None:
            await self._close_replaced(e.participant, e.open_connection, connection=False)
        await self.forget(room, e.participant)
        if e.was_in_room:
            # Not to one who came in with this same change: it never knew the one who went.
            await self.send_many(
                (p.id for p in room.admitted if p.id not in came_in),
                messages.peer_left(e.participant, str(e.reason)),
            )

    async def _close_replaced(self, participant: str, old: int, *, connection: bool) -> None:
        """Tell that socket (that connection only) it was replaced, then close it."""
        text = REPLACED_BY_CONNECTION if connection else REPLACED_BY_DEVICE
        await self.send(
            participant,
            messages.replaced(text),
            close_code=CLOSE_REPLACED,
            close_reason="replaced",
            connection=old,
        )


def _others(room: RoomState, participant: str) -> Iterable[str]:
    return (p.id for p in room.admitted if p.id != participant)
