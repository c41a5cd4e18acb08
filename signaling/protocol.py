"""The wire contract of /ws: inbound messages parsed into frozen dataclasses.

docs/protocol.md documents every message; this module is the one place that reads them
(signaling/messages.py builds what the server sends).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from signaling.core.errors import BadMessage, ChatTooLong

MAX_MESSAGE_BYTES = 64 * 1024
MAX_CHAT_CHARS = 2000
MAX_NOTICE_CHARS = 500
MAX_ID_CHARS = 64
MAX_SDP_CHARS = 32 * 1024
# Deeper than any message of the protocol needs (a signal's data is 3 levels deep): a bound
# keeps pathological nesting out of everything that later walks or re-encodes a message.
MAX_DEPTH = 16


@dataclass(frozen=True)
class Join:
    TYPE: ClassVar[str] = "join"

    token: str
    resume: str | None
    # The person chose "Join here instead" for a link open elsewhere: wait for the
    # therapist as a new device rather than being refused with `link_in_use`.
    new_device: bool = False


@dataclass(frozen=True)
class Admit:
    TYPE: ClassVar[str] = "admit"

    participant: str


@dataclass(frozen=True)
class Deny:
    TYPE: ClassVar[str] = "deny"

    participant: str
    message: str


@dataclass(frozen=True)
class Allow:
    TYPE: ClassVar[str] = "allow"

    participant: str  # the id a turned-away client had, from the lobby's `denied` list


@dataclass(frozen=True)
class LobbyNotice:
    TYPE: ClassVar[str] = "lobby_notice"

    text: str


@dataclass(frozen=True)
class Signal:
    TYPE: ClassVar[str] = "signal"

    to: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Chat:
    TYPE: ClassVar[str] = "chat"

    text: str
    id: str = ""  # the sender's id for it, echoed in `chat` and `chat_undelivered`


@dataclass(frozen=True)
class Leave:
    TYPE: ClassVar[str] = "leave"


@dataclass(frozen=True)
class End:
    TYPE: ClassVar[str] = "end"


@dataclass(frozen=True)
class RecordingRequest:
    TYPE: ClassVar[str] = "recording_request"


@dataclass(frozen=True)
class RecordingStop:
    TYPE: ClassVar[str] = "recording_stop"


@dataclass(frozen=True)
class Consent:
    TYPE: ClassVar[str] = "consent"

    request: str
    granted: bool


@dataclass(frozen=True)
class RecOffer:
    TYPE: ClassVar[str] = "rec_offer"

    recording: str
    sdp: str


Inbound = (
    Join
    | Admit
    | Deny
    | Allow
    | LobbyNotice
    | Signal
    | Chat
    | Leave
    | End
    | RecordingRequest
    | RecordingStop
    | Consent
    | RecOffer
)


def _text(msg: dict[str, Any], key: str, *, limit: int, required: bool = True) -> str:
    value = msg.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise BadMessage(f"'{key}' must be text.")
    if len(value) > limit:
        raise BadMessage(f"'{key}' may be at most {limit} characters.")
    return value


def _id(msg: dict[str, Any], key: str) -> str:
    value = _text(msg, key, limit=MAX_ID_CHARS)
    if not value:
        raise BadMessage(f"'{key}' must name a participant.")
    return value


def _join(msg: dict[str, Any]) -> Join:
    token = msg.get("token")
    if not isinstance(token, str) or not token:
        raise BadMessage("'token' must be the link token.")
    resume = msg.get("resume")
    if resume is not None and (
        not isinstance(resume, str) or len(resume) > 200 or not resume.isascii()
    ):
        raise BadMessage("'resume' must be the resume token from 'joined'.")
    new_device = msg.get("new_device", False)
    if not isinstance(new_device, bool):
        raise BadMessage("'new_device' must be true or false.")
    return Join(token=token, resume=resume or None, new_device=new_device)


def _signal(msg: dict[str, Any]) -> Signal:
    data = msg.get("data")
    if not isinstance(data, dict):
        raise BadMessage("'data' must be an object.")
    return Signal(to=_id(msg, "to"), data=data)


def _chat(msg: dict[str, Any]) -> Chat:
    text = msg.get("text")
    if not isinstance(text, str):
        raise BadMessage("'text' must be text.")
    if len(text) > MAX_CHAT_CHARS:
        raise ChatTooLong()
    if not text.strip():
        raise BadMessage("A chat message cannot be empty.")
    return Chat(text=text, id=_text(msg, "id", limit=MAX_ID_CHARS, required=False))


def _consent(msg: dict[str, Any]) -> Consent:
    granted = msg.get("granted")
    if not isinstance(granted, bool):
        raise BadMessage("'granted' must be true or false.")
    return Consent(request=_text(msg, "request", limit=MAX_ID_CHARS), granted=granted)


def _rec_offer(msg: dict[str, Any]) -> RecOffer:
    sdp = _text(msg, "sdp", limit=MAX_SDP_CHARS)
    if not sdp.startswith("v=0"):
        raise BadMessage("'sdp' must be an SDP offer.")
    return RecOffer(recording=_text(msg, "recording", limit=MAX_ID_CHARS), sdp=sdp)


_PARSERS: dict[str, Callable[[dict[str, Any]], Inbound]] = {
    "join": _join,
    "admit": lambda m: Admit(participant=_id(m, "participant")),
    "deny": lambda m: Deny(
        participant=_id(m, "participant"),
        message=_text(m, "message", limit=MAX_NOTICE_CHARS, required=False),
    ),
    "allow": lambda m: Allow(participant=_id(m, "participant")),
    "lobby_notice": lambda m: LobbyNotice(text=_text(m, "text", limit=MAX_NOTICE_CHARS)),
    "signal": _signal,
    "chat": _chat,
    "leave": lambda m: Leave(),
    "end": lambda m: End(),
    "recording_request": lambda m: RecordingRequest(),
    "recording_stop": lambda m: RecordingStop(),
    "consent": _consent,
    "rec_offer": _rec_offer,
}


def _no_constant(name: str) -> Any:
    raise BadMessage(f"'{name}' is not a JSON number.")


def _too_deep(value: Any) -> bool:
    """Whether `value` nests containers deeper than MAX_DEPTH (iterative: no recursion)."""
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
        if not level:
            return False
    return any(isinstance(node, dict | list) for node in level)


def loads(text: str) -> Any:
    """Strict JSON: no NaN or Infinity, at most MAX_DEPTH levels deep."""
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BadMessage(f"A message may nest at most {MAX_DEPTH} levels deep.") from None
    except ValueError:
        raise BadMessage("The message is not valid JSON.") from None
    if _too_deep(value):
        raise BadMessage(f"A message may nest at most {MAX_DEPTH} levels deep.")
    return value


def parse(text: str) -> Inbound:
    msg = loads(text)
    if not isinstance(msg, dict):
        raise BadMessage("A message must be a JSON object.")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise BadMessage("A message needs a 'type'.")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise BadMessage(f"Unknown message type '{kind[:40]}'.")
    return parser(msg)


def message_type(inbound: Inbound) -> str:
    return inbound.TYPE
