"""Domain values: rooms, their settings and participants.

Everything here is a frozen dataclass that round-trips through a plain dict, because rooms
cross the store (in memory, or as JSON in Redis) as serialised values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from signaling.core.errors import BadMessage
from signaling.core.gate import Gate

ROOM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_CLIENTS_LIMIT = 3
MAX_NAME_LENGTH = 64


class Role(StrEnum):
    THERAPIST = "therapist"
    CLIENT = "client"


class ParticipantState(StrEnum):
    WAITING = "waiting"
    ADMITTED = "admitted"
    DENIED = "denied"
    LEFT = "left"
    EXPIRED = "expired"


class RecordingMode(StrEnum):
    OFF = "off"
    CONSENT = "consent"


class Permission(StrEnum):
    ADMIT = "admit"
    DENY = "deny"
    LOBBY_NOTICE = "lobby_notice"
    END = "end"
    SIGNAL = "signal"
    CHAT = "chat"
    RECORD = "record"
    CONSENT = "consent"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.THERAPIST: frozenset(Permission),
    Role.CLIENT: frozenset({Permission.SIGNAL, Permission.CHAT, Permission.CONSENT}),
}


def valid_room_id(room_id: str) -> bool:
    return bool(ROOM_ID_RE.match(room_id))


def clean_display_name(name: object) -> str:
    if not isinstance(name, str):
        raise BadMessage("The display name must be text.")
    cleaned = " ".join(name.split())
    if not 1 <= len(cleaned) <= MAX_NAME_LENGTH:
        raise BadMessage(f"The display name must be 1 to {MAX_NAME_LENGTH} characters.")
    return cleaned


@dataclass(frozen=True)
class RoomSettings:
    max_clients: int = 1
    waiting_room: bool = True
    recording: RecordingMode = RecordingMode.OFF

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_clients, bool)
            or not isinstance(self.max_clients, int)
            or not 1 <= self.max_clients <= MAX_CLIENTS_LIMIT
        ):
            raise BadMessage(f"max_clients must be a whole number from 1 to {MAX_CLIENTS_LIMIT}.")
        if not isinstance(self.waiting_room, bool):
            raise BadMessage("waiting_room must be true or false.")
        if self.recording not in tuple(RecordingMode):
            raise BadMessage("recording must be 'off' or 'consent'.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_clients": self.max_clients,
            "waiting_room": self.waiting_room,
            "recording": str(self.recording),
        }

    @classmethod
    def from_dict(cls, data: object) -> RoomSettings:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise BadMessage("Room settings must be an object.")
        unknown = set(data) - {"max_clients", "waiting_room", "recording"}
        if unknown:
            raise BadMessage(f"Unknown room settings: {', '.join(sorted(unknown))}.")
        recording = data.get("recording", "off")
        if recording not in {m.value for m in RecordingMode}:
            raise BadMessage("recording must be 'off' or 'consent'.")
        return cls(
            max_clients=data.get("max_clients", 1),
            waiting_room=data.get("waiting_room", True),
            recording=RecordingMode(recording),
        )


@dataclass(frozen=True)
class Participant:
    id: str
    role: Role
    identity: str
    display_name: str
    state: ParticipantState
    link_id: str
    resume_hash: str
    joined_at: float
    node: str
    # Incremented on every (re)connection, so that a stale socket's close or a late
    # expiry timer cannot act on a newer connection of the same participant.
    connection: int = 1
    connected: bool = True
    disconnected_at: float | None = None
    waiting_since: float | None = None
    # Whether this participant's link may `signal`, i.e. takes part in audio and video.
    # False for a chat-only link: the others make no peer connection to it.
    media: bool = True
    # A client link opened on a new device without the resume secret waits here for the
    # therapist, and admitting it replaces this place (the id of the old participant).
    replaces: str | None = None

    @property
    def in_room(self) -> bool:
        return self.state is ParticipantState.ADMITTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": str(self.role),
            "identity": self.identity,
            "display_name": self.display_name,
            "state": str(self.state),
            "link_id": self.link_id,
            "resume_hash": self.resume_hash,
            "joined_at": self.joined_at,
            "node": self.node,
            "connection": self.connection,
            "connected": self.connected,
            "disconnected_at": self.disconnected_at,
            "waiting_since": self.waiting_since,
            "media": self.media,
            "replaces": self.replaces,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Participant:
        return cls(
            id=data["id"],
            role=Role(data["role"]),
            identity=data["identity"],
            display_name=data["display_name"],
            state=ParticipantState(data["state"]),
            link_id=data["link_id"],
            resume_hash=data["resume_hash"],
            joined_at=data["joined_at"],
            node=data["node"],
            connection=data["connection"],
            connected=data["connected"],
            disconnected_at=data["disconnected_at"],
            waiting_since=data["waiting_since"],
            # Rooms stored before `media` existed: everyone then took part in media.
            media=data.get("media", True),
            replaces=data.get("replaces"),
        )


@dataclass(frozen=True)
class Denial:
    """A client the therapist turned away. Its link (`jti`) stays refused for the rest of the
    room's life, unless a therapist allows it again."""

    participant: str  # the id it had when turned away (how the lobby and `allow` name it)
    link: str  # the link id (jti); "" for a denial stored before links were kept
    name: str
    at: float
    message: str  # the therapist's words to them, "" for none

    def to_dict(self) -> dict[str, Any]:
        return {
            "participant": self.participant,
            "link": self.link,
            "name": self.name,
            "at": self.at,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Denial:
        if isinstance(data, list | tuple):
            # Stored before denials named the link: (participant id, message).
            return cls(participant=data[0], link="", name="", at=0.0, message=data[1])
        return cls(
            participant=data["participant"],
            link=data["link"],
            name=data["name"],
            at=data["at"],
            message=data["message"],
        )


@dataclass(frozen=True)
class RoomState:
    id: str
    settings: RoomSettings
    created_at: float
    origin: str  # "api" or "link"
    participants: tuple[Participant, ...] = field(default=())
    notice: str = ""
    ended_at: float | None = None
    # Recent denials (at most room_rules.DENIED_KEPT, one per link): the same link joining
    # again, or a denied client resuming, is refused with `denied` instead of queueing again.
    denied: tuple[Denial, ...] = ()
    recording: Gate = field(default_factory=Gate)
    # When the last link minted for this room through the API expires: an API room that
    # nobody is in is forgotten after that (nobody can enter it any more).
    expires_at: float | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def participant(self, participant_id: str) -> Participant | None:
        for p in self.participants:
            if p.id == participant_id:
                return p
        return None

    def denial(self, *, participant: str = "", link: str = "") -> Denial | None:
        """The denial of this participant id or of this link id, if any."""
        for d in self.denied:
            if (participant and d.participant == participant) or (link and d.link == link):
                return d
        return None

    def by_link(self, link_id: str) -> Participant | None:
        """The place this link holds (not a new device waiting to replace it)."""
        for p in self.participants:
            if p.link_id == link_id and p.replaces is None:
                return p
        return None

    def pending_for(self, participant_id: str) -> Participant | None:
        """A new device of the same link waiting to replace this participant."""
        for p in self.participants:
            if p.replaces == participant_id:
                return p
        return None

    def on_link(self, link_id: str) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.link_id == link_id)

    @property
    def admitted(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.state is ParticipantState.ADMITTED)

    @property
    def waiting(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.participants if p.state is ParticipantState.WAITING)

    @property
    def therapists(self) -> tuple[Participant, ...]:
        return tuple(p for p in self.admitted if p.role is Role.THERAPIST)

    @property
    def admitted_clients(self) -> int:
        return sum(1 for p in self.admitted if p.role is Role.CLIENT)

    @property
    def therapist_present(self) -> bool:
        return bool(self.therapists)

    def with_participant(self, participant: Participant) -> RoomState:
        """Replace (by id) or append a participant."""
        others = tuple(p for p in self.participants if p.id != participant.id)
        if participant.state in (ParticipantState.WAITING, ParticipantState.ADMITTED):
            return replace(self, participants=(*others, participant))
        # Finished participants leave the room state; their outcome travels in messages.
        return replace(self, participants=others)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "settings": self.settings.to_dict(),
            "created_at": self.created_at,
            "origin": self.origin,
            "participants": [p.to_dict() for p in self.participants],
            "notice": self.notice,
            "denied": [d.to_dict() for d in self.denied],
            "ended_at": self.ended_at,
            "recording": self.recording.to_dict(),
            "expires_at": self.expires_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoomState:
        return cls(
            id=data["id"],
            settings=RoomSettings.from_dict(data["settings"]),
            created_at=data["created_at"],
            origin=data["origin"],
            participants=tuple(Participant.from_dict(p) for p in data["participants"]),
            notice=data["notice"],
            denied=tuple(Denial.from_dict(d) for d in data.get("denied", ())),
            ended_at=data["ended_at"],
            recording=Gate.from_dict(data.get("recording")),
            expires_at=data.get("expires_at"),
        )

    def unused_after(self, now: float) -> bool:
        """An API room whose links have all expired, with nobody in it."""
        return (
            self.expires_at is not None
            and self.expires_at < now
            and not self.ended
            and not self.participants
        )
