"""Pure rules that move a whole room from one state to the next.

Each function takes the current RoomState (or None) and returns the next one with what
happened; none does I/O. RoomStore.update applies them atomically, and may call one more
than once under contention, so they must stay pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from recordings import gate as recording_gate
from recordings.gate import GateChange
from signaling.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    LinkInUse,
    NotAllowed,
    NotFound,
    RoomEnded,
    RoomFull,
)
from signaling.lobby import LobbyEvent, next_state
from signaling.model import Participant, ParticipantState, Role, RoomSettings, RoomState


@dataclass(frozen=True)
class Change:
    """One participant before and after a rule; `before` is None for a newcomer."""

    room: RoomState
    before: Participant | None
    after: Participant | None
    # What the change did to the recording gate, if anything (see follow_gate).
    gate: GateChange | None = None


def require_open(room: RoomState | None) -> RoomState:
    if room is None:
        raise NotFound("No such room.")
    if room.ended:
        raise RoomEnded()
    return room


def _require(room: RoomState, participant_id: str) -> Participant:
    p = room.participant(participant_id)
    if p is None:
        raise NotFound("No such participant in this room.")
    return p


def require_therapist(room: RoomState, actor_id: str) -> Participant:
    actor = _require(room, actor_id)
    if actor.role is not Role.THERAPIST:
        raise Forbidden()
    if actor.state is not ParticipantState.ADMITTED:
        raise NotAllowed("Only a therapist in the room can do that.")
    return actor


def open_room(
    room: RoomState | None, room_id: str, settings: RoomSettings, now: float, origin: str
) -> RoomState:
    """The room as it is, or a new one with these settings (a link may open a room)."""
    if room is None:
        return RoomState(id=room_id, settings=settings, created_at=now, origin=origin)
    if room.ended:
        raise RoomEnded()
    return room


def join(room: RoomState, newcomer: Participant) -> Change:
    """A fresh join. A client link already in use elsewhere is refused while that socket
    is live, and takes the place back when it is not (the same person reopening the link).
    """
    room = require_open(room)
    if newcomer.role is Role.CLIENT:
        holder = room.by_link(newcomer.link_id)
        if holder is not None:
            if holder.connected:
                raise LinkInUse()
            return reconnect(room, holder.id, newcomer.node, newcomer.resume_hash)
    if newcomer.role is Role.THERAPIST or not room.settings.waiting_room:
        if newcomer.role is Role.CLIENT and room.admitted_clients >= room.settings.max_clients:
            raise RoomFull()
        p = replace(newcomer, state=ParticipantState.ADMITTED, waiting_since=None)
    else:
        p = replace(newcomer, state=ParticipantState.WAITING, waiting_since=newcomer.joined_at)
    return Change(room.with_participant(p), None, p)


def reconnect(
    room: RoomState, participant_id: str, node: str, resume_hash: str | None = None
) -> Change:
    """A participant's new socket takes over its place, same id and same state; with
    `resume_hash`, the new socket gets a resume token of its own."""
    room = require_open(room)
    before = _require(room, participant_id)
    after = replace(
        before,
        connected=True,
        disconnected_at=None,
        connection=before.connection + 1,
        node=node,
        resume_hash=resume_hash or before.resume_hash,
    )
    return Change(room.with_participant(after), before, after)


def disconnect(room: RoomState, participant_id: str, connection: int, now: float) -> Change | None:
    """The socket dropped: hold the place for the grace period. None if nothing to do."""
    p = room.participant(participant_id)
    if p is None or p.connection != connection or not p.connected:
        return None
    after = replace(p, connected=False, disconnected_at=now)
    return Change(room.with_participant(after), p, after)


def expire(room: RoomState, participant_id: str, connection: int) -> Change | None:
    """The grace period ran out. None when the participant came back or is already gone."""
    p = room.participant(participant_id)
    if p is None or p.connection != connection or p.connected:
        return None
    after = replace(p, state=next_state(p.state, LobbyEvent.EXPIRE))
    return Change(room.with_participant(after), p, after)


def leave(room: RoomState, participant_id: str) -> Change | None:
    p = room.participant(participant_id)
    if p is None:
        return None
    after = replace(p, state=next_state(p.state, LobbyEvent.LEAVE))
    return Change(room.with_participant(after), p, after)


def admit(room: RoomState, actor_id: str, target_id: str) -> Change:
    room = require_open(room)
    require_therapist(room, actor_id)
    target = _require(room, target_id)
    if target.state is not ParticipantState.WAITING:
        raise Conflict("That participant is no longer waiting.")
    if target.role is Role.CLIENT and room.admitted_clients >= room.settings.max_clients:
        raise RoomFull()
    after = replace(target, state=next_state(target.state, LobbyEvent.ADMIT), waiting_since=None)
    return Change(room.with_participant(after), target, after)


DENIED_KEPT = 20


def deny(room: RoomState, actor_id: str, target_id: str, message: str = "") -> Change:
    room = require_open(room)
    require_therapist(room, actor_id)
    target = _require(room, target_id)
    try:
        after = replace(target, state=next_state(target.state, LobbyEvent.DENY))
    except InvalidTransition:
        raise Conflict("That participant is no longer waiting.") from None
    room = replace(room, denied=(*room.denied, (target.id, message))[-DENIED_KEPT:])
    return Change(room.with_participant(after), target, after)


def set_notice(room: RoomState, actor_id: str, text: str) -> RoomState:
    room = require_open(room)
    require_therapist(room, actor_id)
    return replace(room, notice=text)


def end(room: RoomState | None, now: float) -> tuple[RoomState, tuple[Participant, ...]]:
    """End the room for everyone; returns the ended room and who was in it."""
    room = require_open(room)
    return replace(room, participants=(), ended_at=now, notice=""), room.participants


def follow_gate(change: Change, now: float) -> Change:
    """Keep the recording gate true to who is in the room: someone entering must say yes
    too, and someone leaving ends the request."""
    if change.after is None:
        return change
    was_in = change.before is not None and change.before.in_room
    if change.after.in_room and not was_in:
        moved = recording_gate.participant_entered(
            change.room.recording, participant=change.after.id, now=now
        )
    elif was_in and not change.after.in_room:
        moved = recording_gate.participant_left(
            change.room.recording, participant=change.after.id, now=now
        )
    else:
        return change
    if moved is None:
        return change
    return replace(change, room=replace(change.room, recording=moved.gate), gate=moved)
