"""Pure rules that move a whole room from one state to the next.

Each function takes the current RoomState (or None) and returns the next one with what
happened: the typed events of signaling/core/events.py, which the store commits with the
state. None does I/O. They stay in one module (a little over 400 lines) because they share
the room's invariants (one place per link, the new-device hand-over, the gate following who
is in the room): split, each would have to re-read the others' to be understood.
RoomStore.update applies them atomically, and may call one more than once under contention,
so they must stay pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from signaling.core import gate as recording_gate
from signaling.core.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    LinkInUse,
    NotAllowed,
    NotFound,
    RoomEnded,
    RoomFull,
)
from signaling.core.events import (
    Admission,
    Departure,
    NoticePosted,
    ParticipantAdmitted,
    ParticipantAllowed,
    ParticipantDenied,
    ParticipantLeft,
    ParticipantReconnecting,
    ParticipantResumed,
    ParticipantWaiting,
    RoomEvent,
    RoomOpened,
    SessionEnded,
    gate_events,
)
from signaling.core.gate import GateChange, Reason
from signaling.core.lobby import LobbyEvent, next_state
from signaling.core.model import (
    Denial,
    Participant,
    ParticipantState,
    Role,
    RoomSettings,
    RoomState,
)


@dataclass(frozen=True)
class Change:
    """A room after a rule, with the events it implies, in order; for a rule about one
    participant, that participant before and after (`before` None for a newcomer)."""

    room: RoomState
    before: Participant | None = None
    after: Participant | None = None
    # What the change did to the recording gate, if anything (see follow_gate).
    gate: GateChange | None = None
    # A participant this change took out of the room on the side: the old place a new device
    # replaced on admission, or a new device of the same link whose socket had gone.
    replaced: Participant | None = None
    # A new device that waited for the participant who just went: now free of that wait
    # (still waiting, or admitted in a room without a waiting room).
    released: Participant | None = None
    events: tuple[RoomEvent, ...] = ()

    def then(self, *events: RoomEvent) -> Change:
        return replace(self, events=(*self.events, *events))


# Live sockets (a socket in its grace period counting) one therapist link may hold: a
# laptop and a phone, say, but not one link opening a crowd into a client's session.
THERAPIST_SOCKETS_PER_LINK = 2


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
    room: RoomState | None,
    room_id: str,
    settings: RoomSettings,
    now: float,
    origin: str,
    *,
    expires_at: float | None = None,
) -> Change:
    """The room as it is, or a new one with these settings (a link or the API may open a
    room)."""
    if room is None:
        opened = RoomState(
            id=room_id, settings=settings, created_at=now, origin=origin, expires_at=expires_at
        )
        return Change(opened, events=(RoomOpened(room_id, now, origin),))
    if room.ended:
        raise RoomEnded()
    return Change(room)


def join(room: RoomState, newcomer: Participant, *, new_device: bool = False) -> Change:
    """A join without the resume secret. It never takes an existing place back: a client
    link whose place is held goes through the waiting room as a new device (see
    `_new_device`); a therapist link holds at most THERAPIST_SOCKETS_PER_LINK places.
    """
    room = require_open(room)
    if newcomer.role is Role.THERAPIST:
        if len(room.on_link(newcomer.link_id)) >= THERAPIST_SOCKETS_PER_LINK:
            raise LinkInUse("This therapist link is already open on two devices.")
    else:
        holder = room.by_link(newcomer.link_id)
        if holder is not None:
            return _new_device(room, newcomer, holder, new_device)
    if newcomer.role is Role.THERAPIST or not room.settings.waiting_room:
        if newcomer.role is Role.CLIENT and room.admitted_clients >= room.settings.max_clients:
            raise RoomFull()
        p = replace(newcomer, state=ParticipantState.ADMITTED, waiting_since=None)
    else:
        p = replace(newcomer, state=ParticipantState.WAITING, waiting_since=newcomer.joined_at)
    return Change(room.with_participant(p), None, p, events=(_arrived(room, p),))


def _arrived(room: RoomState, p: Participant) -> RoomEvent:
    if p.in_room:
        return ParticipantAdmitted(room.id, p.joined_at, p.id, p.role, Admission.ON_JOIN, None)
    return ParticipantWaiting(room.id, p.joined_at, p.id, p.role, p.replaces is not None)


def _new_device(
    room: RoomState, newcomer: Participant, holder: Participant, new_device: bool
) -> Change:
    """The link of `holder` opened without its resume secret. While the holder's socket is
    live that is `link_in_use`, unless the person chose to join here instead (`new_device`);
    either way, or once the holder's socket has dropped, the newcomer waits as a new device
    for the therapist, and admitting it replaces the holder. In a room without a waiting room
    it waits until the holder's place is gone (or a therapist admits it)."""
    pending = room.pending_for(holder.id)
    if pending is not None and pending.connected:
        raise LinkInUse()
    if holder.connected and not new_device:
        raise LinkInUse()
    events: tuple[RoomEvent, ...] = ()
    if pending is not None:
        room = replace(room, participants=tuple(p for p in room.participants if p is not pending))
        events = (_left(room, pending, Departure.REPLACED, newcomer.joined_at, by=newcomer.id),)
    p = replace(
        newcomer,
        state=ParticipantState.WAITING,
        waiting_since=newcomer.joined_at,
        replaces=holder.id,
    )
    return Change(
        room.with_participant(p), None, p, replaced=pending, events=(*events, _arrived(room, p))
    )


def _left(
    room: RoomState, p: Participant, reason: Departure, now: float, *, by: str | None = None
) -> ParticipantLeft:
    open_connection = p.connection if reason is Departure.REPLACED and p.connected else None
    return ParticipantLeft(room.id, now, p.id, p.role, reason, p.in_room, open_connection, by)


def _release(
    room: RoomState, gone: str, now: float
) -> tuple[RoomState, Participant | None, tuple[RoomEvent, ...]]:
    """`gone` left its place: a new device waiting to replace it waits on as anyone else,
    and in a room without a waiting room takes a fresh place at once if there is one."""
    pending = room.pending_for(gone)
    if pending is None:
        return room, None, ()
    freed = replace(pending, replaces=None)
    if not room.settings.waiting_room and (
        freed.role is not Role.CLIENT or room.admitted_clients < room.settings.max_clients
    ):
        freed = replace(freed, state=ParticipantState.ADMITTED, waiting_since=None)
        event: RoomEvent = ParticipantAdmitted(
            room.id, now, freed.id, freed.role, Admission.PLACE_FREED, None
        )
    else:
        event = ParticipantWaiting(room.id, now, freed.id, freed.role, False)
    return room.with_participant(freed), freed, (event,)


STAYING = (ParticipantState.WAITING, ParticipantState.ADMITTED)


def _gone(change: Change, now: float) -> Change:
    """Release whoever waited to replace a participant that this change took out."""
    before, after = change.before, change.after
    if before is None or after is None or after.state in STAYING:
        return change
    room, freed, events = _release(change.room, before.id, now)
    return replace(change, room=room, released=freed).then(*events)


def reconnect(
    room: RoomState, participant_id: str, node: str, resume_hash: str | None = None, *, now: float
) -> Change:
    """A participant's new socket takes over its place, same id and same state; with
    `resume_hash`, the new socket gets a resume token of its own (the old one stops
    working)."""
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
    open_connection = before.connection if before.connected else None
    resumed = ParticipantResumed(room.id, now, after.id, after.role, after.in_room, open_connection)
    return Change(room.with_participant(after), before, after, events=(resumed,))


def disconnect(room: RoomState, participant_id: str, connection: int, now: float) -> Change | None:
    """The socket dropped: hold the place for the grace period. None if nothing to do."""
    p = room.participant(participant_id)
    if p is None or p.connection != connection or not p.connected:
        return None
    after = replace(p, connected=False, disconnected_at=now)
    event = ParticipantReconnecting(room.id, now, p.id, p.role, p.in_room, connection)
    return Change(room.with_participant(after), p, after, events=(event,))


def expire(room: RoomState, participant_id: str, connection: int, *, now: float) -> Change | None:
    """The grace period ran out. None when the participant came back or is already gone."""
    p = room.participant(participant_id)
    if p is None or p.connection != connection or p.connected:
        return None
    after = replace(p, state=next_state(p.state, LobbyEvent.EXPIRE))
    left = _left(room, p, Departure.TIMEOUT, now)
    return _gone(Change(room.with_participant(after), p, after, events=(left,)), now)


def leave(room: RoomState, participant_id: str, *, now: float) -> Change | None:
    p = room.participant(participant_id)
    if p is None:
        return None
    after = replace(p, state=next_state(p.state, LobbyEvent.LEAVE))
    left = _left(room, p, Departure.LEFT, now)
    return _gone(Change(room.with_participant(after), p, after, events=(left,)), now)


def admit(room: RoomState, actor_id: str, target_id: str, *, now: float) -> Change:
    room = require_open(room)
    require_therapist(room, actor_id)
    target = _require(room, target_id)
    if target.state is not ParticipantState.WAITING:
        raise Conflict("That participant is no longer waiting.")
    # A new device of a link takes the place it replaces: the old one goes.
    old = room.participant(target.replaces) if target.replaces else None
    events: tuple[RoomEvent, ...] = ()
    if old is not None:
        room = replace(room, participants=tuple(p for p in room.participants if p is not old))
        events = (_left(room, old, Departure.REPLACED, now, by=target.id),)
    if target.role is Role.CLIENT and room.admitted_clients >= room.settings.max_clients:
        raise RoomFull()
    after = replace(
        target,
        state=next_state(target.state, LobbyEvent.ADMIT),
        waiting_since=None,
        replaces=None,
    )
    admitted = ParticipantAdmitted(
        room.id, now, after.id, after.role, Admission.BY_THERAPIST, actor_id
    )
    return Change(
        room.with_participant(after), target, after, replaced=old, events=(*events, admitted)
    )


# A room remembers at most this many denials, one per link, the most recent kept: the bound
# on what one room's state holds. A link pushed out by newer denials is not let in: it waits
# again, where the therapist sees it.
DENIED_KEPT = 20


def deny(
    room: RoomState, actor_id: str, target_id: str, message: str = "", now: float = 0.0
) -> Change:
    """Turn a waiting client away. Its link stays refused for the rest of the room's life
    (see `denial`), until a therapist allows it again (`allow`)."""
    room = require_open(room)
    require_therapist(room, actor_id)
    target = _require(room, target_id)
    try:
        after = replace(target, state=next_state(target.state, LobbyEvent.DENY))
    except InvalidTransition:
        raise Conflict("That participant is no longer waiting.") from None
    room = replace(room, denied=_denied_with(room, target, message, now)).with_participant(after)
    events: list[RoomEvent] = [ParticipantDenied(room.id, now, target.id, actor_id)]
    # The denial binds the link, so a new device of it waiting to take this place is turned
    # away with it: it never reaches the room (docs/protocol.md, "A denial sticks").
    pending = room.pending_for(target.id)
    if pending is not None:
        turned = replace(pending, replaces=None, state=next_state(pending.state, LobbyEvent.DENY))
        room = room.with_participant(turned)
        events.append(ParticipantDenied(room.id, now, turned.id, actor_id))
    return Change(room, target, after, events=tuple(events))


def _denied_with(
    room: RoomState, target: Participant, message: str, now: float
) -> tuple[Denial, ...]:
    """The room's denials with this one added: one per link, the newest DENIED_KEPT."""
    d = Denial(target.id, target.link_id, target.display_name, now, message)
    return (*(old for old in room.denied if old.link != target.link_id), d)[-DENIED_KEPT:]


def link_denial(room: RoomState, link_id: str) -> Denial | None:
    """The denial that refuses this link a new place, if any: a link turned away stays
    refused for the rest of the room's life (a place it still holds may be resumed with its
    resume secret: that is not this link joining again)."""
    return room.denial(link=link_id)


def allow(room: RoomState, actor_id: str, denied_id: str, *, now: float) -> Change:
    """A therapist lets a turned-away link join again: into the waiting room, as anyone."""
    room = require_open(room)
    require_therapist(room, actor_id)
    if room.denial(participant=denied_id) is None:
        raise NotFound("Nobody by that id was turned away.")
    allowed = replace(room, denied=tuple(d for d in room.denied if d.participant != denied_id))
    return Change(allowed, events=(ParticipantAllowed(room.id, now, denied_id, actor_id),))


def set_notice(room: RoomState, actor_id: str, text: str, *, now: float) -> Change:
    room = require_open(room)
    require_therapist(room, actor_id)
    return Change(replace(room, notice=text), events=(NoticePosted(room.id, now, actor_id),))


def end(room: RoomState | None, now: float, by: str | None = None) -> Change:
    """End the room for everyone, and any recording in it (the SessionEnded event names who
    was in it)."""
    room = require_open(room)
    ended = replace(room, participants=(), ended_at=now, notice="", denied=())
    shut = recording_gate.shut(ended.recording, reason=Reason.SESSION_ENDED, now=now)
    gated: tuple[RoomEvent, ...] = ()
    if shut is not None:
        ended = replace(ended, recording=shut.gate)
        gated = gate_events(ended, shut, now)
    everyone = tuple(p.id for p in room.participants)
    dropped = tuple(p.id for p in room.participants if not p.connected)
    return Change(
        ended, gate=shut, events=(*gated, SessionEnded(room.id, now, by, everyone, dropped))
    )


def follow_gate(change: Change, now: float) -> Change:
    """Keep the recording gate true to who is in the room: someone entering must say yes
    too, and someone leaving ends the request."""
    if change.after is None:
        return change
    # At most one step moves the gate: a participant leaving an open request stops it.
    replaced = change.replaced
    if replaced is not None and replaced.in_room:
        moved = recording_gate.participant_left(
            change.room.recording, participant=replaced.id, now=now
        )
        if moved is not None:
            return _gated(change, moved, now)
    released = change.released
    if released is not None and released.in_room and change.before is not None:
        left = change.before.in_room and not change.after.in_room
        if not left or not change.room.recording.asked(change.before.id):
            moved = recording_gate.participant_entered(
                change.room.recording, participant=released.id, now=now
            )
            if moved is not None:
                return _gated(change, moved, now)
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
    return _gated(change, moved, now)


def _gated(change: Change, moved: GateChange, now: float) -> Change:
    room = replace(change.room, recording=moved.gate)
    return replace(change, room=room, gate=moved).then(*gate_events(room, moved, now))
