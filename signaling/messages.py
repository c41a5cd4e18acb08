"""Every message the server sends over /ws, and the views of a room that the REST API shares.

docs/protocol.md documents each one; this module is the one place that builds them, as typed
dicts, so the wire format lives here alone. RoomService and the /ws handler send what the
message builders return; the REST room view (`GET /api/v1/rooms/{id}`) is `room_view`, made
of the same participant, waiting-list and recording views as the WebSocket messages.
Inbound messages are parsed in signaling/protocol.py.
"""

# ruff: noqa: UP013
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, NotRequired, TypedDict

from signaling.core.errors import SessionroomError
from signaling.core.gate import Gate
from signaling.core.model import Denial, Participant, Role, RoomState

# ---- views ----


class ParticipantView(TypedDict):
    """What others may see of a participant; `media`: whether it takes part in audio/video."""

    id: str
    role: str
    name: str
    media: bool


class WaitingEntry(TypedDict):
    """One who waits, in a therapist's lobby and the REST room view."""

    id: str
    name: str
    since: float | None
    connected: bool
    media: bool
    # A client link opened elsewhere without the resume secret: admitting this one replaces
    # the participant `replaces` (the page says "joining from a new device").
    new_device: bool
    replaces: str | None


class DeniedEntry(TypedDict):
    """One turned away, in a therapist's lobby: never the therapist's message."""

    id: str
    name: str
    at: float


class RecordingView(TypedDict):
    status: str
    request: str | None
    recording: str | None
    requested_by: str | None
    answers: dict[str, bool | None]
    reason: str | None
    by: str | None
    at: float | None


class InRoomEntry(ParticipantView):
    connected: bool


class RoomViewBody(TypedDict):
    id: str
    settings: dict[str, Any]
    created_at: float
    origin: str
    ended: bool
    expires_at: float | None
    notice: str
    waiting: list[WaitingEntry]
    in_room: list[InRoomEntry]
    recording: RecordingView


def participant_view(p: Participant) -> ParticipantView:
    return {"id": p.id, "role": str(p.role), "name": p.display_name, "media": p.media}


def waiting_entry(p: Participant) -> WaitingEntry:
    return {
        "id": p.id,
        "name": p.display_name,
        "since": p.waiting_since,
        "connected": p.connected,
        "media": p.media,
        "new_device": p.replaces is not None,
        "replaces": p.replaces,
    }


def denied_entry(d: Denial) -> DeniedEntry:
    return {"id": d.participant, "name": d.name, "at": d.at}


def recording_view(gate: Gate) -> RecordingView:
    """The recording gate as participants see it (`recording_state`, `joined`, REST)."""
    return {
        "status": str(gate.status),
        "request": gate.request,
        "recording": gate.recording,
        "requested_by": gate.requested_by,
        "answers": dict(gate.answers),
        "reason": str(gate.reason) if gate.reason else None,
        "by": gate.by,
        "at": gate.at,
    }


def room_view(room: RoomState) -> RoomViewBody:
    """`GET /api/v1/rooms/{id}`: the room without tokens."""
    return {
        "id": room.id,
        "settings": room.settings.to_dict(),
        "created_at": room.created_at,
        "origin": room.origin,
        "ended": room.ended,
        "expires_at": room.expires_at,
        "notice": room.notice,
        "waiting": [waiting_entry(p) for p in room.waiting],
        "in_room": [{**participant_view(p), "connected": p.connected} for p in room.admitted],
        "recording": recording_view(room.recording),
    }


# ---- messages ----


class JoinedParticipant(ParticipantView):
    permissions: list[str]


class JoinedRoom(TypedDict):
    id: str
    settings: dict[str, Any]


class Joined(TypedDict):
    type: Literal["joined"]
    participant: JoinedParticipant
    room: JoinedRoom
    state: Literal["in_room", "waiting"]
    ice_servers: list[dict[str, Any]]
    resume: str
    resumed: bool
    # In the room:
    peers: NotRequired[list[ParticipantView]]
    recording: NotRequired[RecordingView]
    # In the waiting room:
    waiting_since: NotRequired[float | None]
    therapist_present: NotRequired[bool]
    notice: NotRequired[str]
    # For a therapist (as in `lobby`):
    lobby: NotRequired[list[WaitingEntry]]
    denied: NotRequired[list[DeniedEntry]]


class Lobby(TypedDict):
    type: Literal["lobby"]
    waiting: list[WaitingEntry]
    denied: list[DeniedEntry]


# One line per message, as in docs/protocol.md's tables (and `signal` and `chat` need this
# form anyway: "from" is a keyword).
PeerJoined = TypedDict(
    "PeerJoined", {"type": Literal["peer_joined"], "participant": ParticipantView}
)
Admitted = TypedDict("Admitted", {"type": Literal["admitted"], "peers": list[ParticipantView]})
PeerLeft = TypedDict("PeerLeft", {"type": Literal["peer_left"], "participant": str, "reason": str})
PeerReconnecting = TypedDict(
    "PeerReconnecting", {"type": Literal["peer_reconnecting"], "participant": str}
)
PeerResumed = TypedDict("PeerResumed", {"type": Literal["peer_resumed"], "participant": str})
WaitingStatus = TypedDict(
    "WaitingStatus", {"type": Literal["waiting_status"], "therapist_present": bool}
)
LobbyNotice = TypedDict("LobbyNotice", {"type": Literal["lobby_notice"], "text": str})
DeniedMessage = TypedDict("DeniedMessage", {"type": Literal["denied"], "message": str})
Ended = TypedDict("Ended", {"type": Literal["ended"], "by": str | None})
LinkInUse = TypedDict("LinkInUse", {"type": Literal["link_in_use"], "participant": str | None})
ErrorMessage = TypedDict("ErrorMessage", {"type": Literal["error"], "code": str, "message": str})
Signal = TypedDict("Signal", {"type": Literal["signal"], "from": str, "data": Mapping[str, Any]})
Chat = TypedDict(
    "Chat", {"type": Literal["chat"], "from": str, "text": str, "at": float, "id": str}
)
ChatUndelivered = TypedDict(
    "ChatUndelivered", {"type": Literal["chat_undelivered"], "id": Any, "to": str}
)
RecAnswer = TypedDict("RecAnswer", {"type": Literal["rec_answer"], "recording": str, "sdp": str})
RecordingIssue = TypedDict(
    "RecordingIssue", {"type": Literal["recording_issue"], "participant": str, "code": str}
)
ServerShutdown = TypedDict("ServerShutdown", {"type": Literal["server_shutdown"]})
Left = TypedDict("Left", {"type": Literal["left"]})


class RecordingState(RecordingView):
    type: Literal["recording_state"]


class Asker(TypedDict):
    id: str | None
    name: str


class ConsentRequest(TypedDict):
    type: Literal["consent_request"]
    request: str | None
    by: Asker
    records: list[str]
    where: str


Outbound = (
    Joined
    | Lobby
    | PeerJoined
    | Admitted
    | PeerLeft
    | PeerReconnecting
    | PeerResumed
    | WaitingStatus
    | LobbyNotice
    | DeniedMessage
    | Ended
    | LinkInUse
    | ErrorMessage
    | Signal
    | Chat
    | ChatUndelivered
    | RecAnswer
    | RecordingIssue
    | RecordingState
    | ConsentRequest
    | ServerShutdown
    | Left
)


def joined(
    room: RoomState,
    me: Participant,
    *,
    permissions: Iterable[str],
    ice_servers: list[dict[str, Any]],
    resume: str,
    resumed: bool,
) -> Joined:
    msg: Joined = {
        "type": "joined",
        "participant": {
            **participant_view(me),
            "permissions": sorted(str(p) for p in permissions),
        },
        "room": {"id": room.id, "settings": room.settings.to_dict()},
        "state": "in_room" if me.in_room else "waiting",
        "ice_servers": ice_servers,
        "resume": resume,
        "resumed": resumed,
    }
    if me.in_room:
        msg["peers"] = [participant_view(p) for p in room.admitted if p.id != me.id]
        msg["recording"] = recording_view(room.recording)
    else:
        msg["waiting_since"] = me.waiting_since
        msg["therapist_present"] = room.therapist_present
        msg["notice"] = room.notice
    if me.role is Role.THERAPIST:
        whole = lobby(room)
        msg["lobby"] = whole["waiting"]
        msg["denied"] = whole["denied"]
    return msg


def lobby(room: RoomState) -> Lobby:
    return {
        "type": "lobby",
        "waiting": [waiting_entry(p) for p in room.waiting],
        # Those turned away, whose links stay refused until a therapist sends `allow`.
        "denied": [denied_entry(d) for d in room.denied if d.link],
    }


def peer_joined(p: Participant) -> PeerJoined:
    return {"type": "peer_joined", "participant": participant_view(p)}


def admitted(peers: Iterable[Participant]) -> Admitted:
    return {"type": "admitted", "peers": [participant_view(p) for p in peers]}


def peer_left(participant: str, reason: str) -> PeerLeft:
    return {"type": "peer_left", "participant": participant, "reason": reason}


def peer_reconnecting(participant: str) -> PeerReconnecting:
    return {"type": "peer_reconnecting", "participant": participant}


def peer_resumed(participant: str) -> PeerResumed:
    return {"type": "peer_resumed", "participant": participant}


def waiting_status(therapist_present: bool) -> WaitingStatus:
    return {"type": "waiting_status", "therapist_present": therapist_present}


def lobby_notice(text: str) -> LobbyNotice:
    return {"type": "lobby_notice", "text": text}


def denied(message: str) -> DeniedMessage:
    return {"type": "denied", "message": message}


def ended(by: str | None) -> Ended:
    return {"type": "ended", "by": by}


def link_in_use(holder: str | None) -> LinkInUse:
    return {"type": "link_in_use", "participant": holder}


def replaced(message: str) -> ErrorMessage:
    return {"type": "error", "code": "replaced", "message": message}


def error(e: SessionroomError) -> ErrorMessage:
    return {"type": "error", "code": e.code, "message": e.message}


def signal(sender: str, data: Mapping[str, Any]) -> Signal:
    return {"type": "signal", "from": sender, "data": data}


def chat(sender: str, text: str, at: float, chat_id: str) -> Chat:
    return {"type": "chat", "from": sender, "text": text, "at": at, "id": chat_id}


def chat_undelivered(chat_id: Any, to: str) -> ChatUndelivered:
    return {"type": "chat_undelivered", "id": chat_id, "to": to}


def rec_answer(recording: str, sdp: str) -> RecAnswer:
    return {"type": "rec_answer", "recording": recording, "sdp": sdp}


def recording_issue(participant: str, code: str) -> RecordingIssue:
    return {"type": "recording_issue", "participant": participant, "code": code}


def recording_state(gate: Gate) -> RecordingState:
    return {"type": "recording_state", **recording_view(gate)}


def consent_request(room: RoomState, where: str) -> ConsentRequest:
    """Ask a participant to consent to the room's open recording request."""
    gate = room.recording
    asker = room.participant(gate.requested_by or "")
    return {
        "type": "consent_request",
        "request": gate.request,
        "by": {"id": gate.requested_by, "name": asker.display_name if asker else ""},
        "records": ["audio", "video"],
        "where": where,
    }


def server_shutdown() -> ServerShutdown:
    return {"type": "server_shutdown"}


def left() -> Left:
    return {"type": "left"}
