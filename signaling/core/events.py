"""Room events: what a room transition did, as typed values.

The pure rules (room_rules.py, gate.py through `gate_events`) return them with the next
state; the store commits state and events together (in Redis in one transaction, onto a
stream), so a durable reader of the store's events can never miss one or see one that did not
happen. After the commit, one dispatcher (signaling/dispatch.py) hands them to subscribers that
do not know each other: recording control, metrics, the wire and the grace timers.

An event names rooms and participants by id, with roles, times and reasons: never a display
name, a chat, a notice or a denial's message, because the store keeps events on disk.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from signaling.core.gate import GateChange, Reason, Status
from signaling.core.model import Role, RoomState


class Admission(StrEnum):
    """How a participant came into the room."""

    ON_JOIN = "on_join"  # a therapist, or a client of a room without a waiting room
    BY_THERAPIST = "by_therapist"
    PLACE_FREED = "place_freed"  # a new device whose old place went, in a room without a wait


class Departure(StrEnum):
    """Why a participant's place went."""

    LEFT = "left"
    TIMEOUT = "timeout"
    REPLACED = "replaced"  # a new device of the same link took it


@dataclass(frozen=True)
class RoomEvent:
    kind: ClassVar[str] = ""
    room: str
    at: float

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class RoomOpened(RoomEvent):
    kind: ClassVar[str] = "room_opened"
    origin: str  # "api" or "link"


@dataclass(frozen=True)
class ParticipantWaiting(RoomEvent):
    """Someone is in the waiting room: a newcomer, or a new device freed of its wait for the
    place it was to replace."""

    kind: ClassVar[str] = "participant_waiting"
    participant: str
    role: Role
    new_device: bool  # the link's place is held elsewhere; admitting this replaces it


@dataclass(frozen=True)
class ParticipantAdmitted(RoomEvent):
    kind: ClassVar[str] = "participant_admitted"
    participant: str
    role: Role
    via: Admission
    by: str | None  # the therapist who admitted, for BY_THERAPIST


@dataclass(frozen=True)
class ParticipantDenied(RoomEvent):
    kind: ClassVar[str] = "participant_denied"
    participant: str
    by: str


@dataclass(frozen=True)
class ParticipantAllowed(RoomEvent):
    """A therapist lifted a denial: that link may wait again."""

    kind: ClassVar[str] = "participant_allowed"
    participant: str
    by: str


@dataclass(frozen=True)
class ParticipantLeft(RoomEvent):
    """A participant's place went: they left, their grace period ran out (`TIMEOUT`), or a
    new device of their link took it (`REPLACED`, `by` the new one)."""

    kind: ClassVar[str] = "participant_left"
    participant: str
    role: Role
    reason: Departure
    was_in_room: bool  # False: it was waiting
    # The socket still open on the place, for REPLACED: that connection is told and closed.
    open_connection: int | None = None
    by: str | None = None


@dataclass(frozen=True)
class ParticipantReconnecting(RoomEvent):
    """The socket dropped; the place is held for the grace period."""

    kind: ClassVar[str] = "participant_reconnecting"
    participant: str
    role: Role
    was_in_room: bool
    connection: int  # the connection that dropped: the grace timer is for that one


@dataclass(frozen=True)
class ParticipantResumed(RoomEvent):
    """A new socket took the place back with the resume secret."""

    kind: ClassVar[str] = "participant_resumed"
    participant: str
    role: Role
    in_room: bool
    # The earlier socket if it still looked alive (a network change): it is closed.
    open_connection: int | None


@dataclass(frozen=True)
class NoticePosted(RoomEvent):
    """A therapist set the waiting room's notice (its text stays in the room's state)."""

    kind: ClassVar[str] = "notice_posted"
    by: str


@dataclass(frozen=True)
class SessionEnded(RoomEvent):
    kind: ClassVar[str] = "session_ended"
    by: str | None  # None: ended through the API
    participants: tuple[str, ...]  # everyone who was in it, waiting or admitted
    disconnected: tuple[str, ...]  # those of them whose socket had dropped


@dataclass(frozen=True)
class RecordingRequested(RoomEvent):
    """A therapist asked to record; everyone present is asked."""

    kind: ClassVar[str] = "recording_requested"
    request: str
    by: str
    asked: tuple[str, ...]


@dataclass(frozen=True)
class ConsentAsked(RoomEvent):
    """Someone who came in while a request was open is asked too."""

    kind: ClassVar[str] = "consent_asked"
    request: str
    participant: str


@dataclass(frozen=True)
class ConsentAnswered(RoomEvent):
    kind: ClassVar[str] = "consent_answered"
    request: str
    participant: str
    granted: bool


@dataclass(frozen=True)
class RecordingStarted(RoomEvent):
    kind: ClassVar[str] = "recording_started"
    request: str
    recording: str


@dataclass(frozen=True)
class RecordingStopped(RoomEvent):
    """The request closed, or the recording under it stopped. `recording` is None when the
    request closed before anything was recorded (a no, a departure before every yes)."""

    kind: ClassVar[str] = "recording_stopped"
    request: str
    recording: str | None
    reason: Reason
    by: str | None


GATE_EVENTS = (
    RecordingRequested,
    ConsentAsked,
    ConsentAnswered,
    RecordingStarted,
    RecordingStopped,
)

EVENT_TYPES: dict[str, type[RoomEvent]] = {
    cls.kind: cls
    for cls in (
        RoomOpened,
        ParticipantWaiting,
        ParticipantAdmitted,
        ParticipantDenied,
        ParticipantAllowed,
        ParticipantLeft,
        ParticipantReconnecting,
        ParticipantResumed,
        NoticePosted,
        SessionEnded,
        *GATE_EVENTS,
    )
}

_ENUMS: dict[str, type[StrEnum]] = {
    "role": Role,
    "via": Admission,
    "reason": Departure,
}


def event_from_dict(data: dict[str, Any]) -> RoomEvent:
    """The event `to_dict` wrote; ValueError for anything else."""
    cls = EVENT_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ValueError(f"unknown room event {data.get('type')!r}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = data[f.name]
        if f.name == "reason":
            value = Reason(value) if cls is RecordingStopped else Departure(value)
        elif f.name in _ENUMS and value is not None:
            value = _ENUMS[f.name](value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


@dataclass(frozen=True)
class Committed:
    """The events one store transition committed, in order, and the room they led to."""

    room: RoomState
    events: tuple[RoomEvent, ...]


def gate_events(
    room: RoomState,
    change: GateChange,
    now: float,
    *,
    requested: bool = False,
    answered: tuple[str, bool] | None = None,
) -> tuple[RoomEvent, ...]:
    """The events a move of the consent gate implies. `requested`: the move was a therapist's
    new request; `answered`: it was this participant's answer."""
    gate = change.gate
    request = gate.request or ""
    out: list[RoomEvent] = []
    if requested:
        out.append(RecordingRequested(room.id, now, request, gate.requested_by or "", change.ask))
    else:
        out += [ConsentAsked(room.id, now, request, p) for p in change.ask]
    if answered is not None:
        out.append(ConsentAnswered(room.id, now, request, answered[0], answered[1]))
    if change.stopped is not None or gate.status is Status.STOPPED:
        reason = change.stop_reason or gate.reason or Reason.SESSION_ENDED
        out.append(RecordingStopped(room.id, now, request, change.stopped, reason, gate.by))
    if change.started is not None:
        out.append(RecordingStarted(room.id, now, request, change.started))
    return tuple(out)
