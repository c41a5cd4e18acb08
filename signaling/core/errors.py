"""Every refusal the service can make, in one flat module.

Domain code raises these; only the edges (the WebSocket handler and the REST handlers) turn
them into protocol error codes, HTTP statuses and closed sockets.
"""

from __future__ import annotations


class SessionroomError(Exception):
    """Base class. `code` is the stable protocol code; `closes` ends the socket."""

    code = "internal_error"
    http_status = 500
    closes = False
    default_message = "Something went wrong on our side."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(SessionroomError):
    code = "config_error"
    default_message = "The service is not configured correctly."


# Authentication: the socket closes after these.
class InvalidToken(SessionroomError):
    code = "invalid_token"
    http_status = 401
    closes = True
    default_message = "This link is not valid."


class TokenExpired(SessionroomError):
    code = "token_expired"
    http_status = 401
    closes = True
    default_message = "This link has expired."


class TokenNotYetValid(SessionroomError):
    code = "token_not_yet_valid"
    http_status = 401
    closes = True
    default_message = "This link is not valid yet: the appointment has not started."


class LinkInUse(SessionroomError):
    code = "link_in_use"
    http_status = 409
    closes = True
    default_message = "This link is already open on another device."


class JoinTimeout(SessionroomError):
    code = "join_timeout"
    closes = True
    default_message = "No join message arrived in time."


class RoomEnded(SessionroomError):
    code = "room_ended"
    http_status = 410
    closes = True
    default_message = "This session has ended."


class Denied(SessionroomError):
    """A join by a link the therapist turned away, or a resume by a client turned away while
    its socket was away."""

    code = "denied"
    http_status = 403
    closes = True
    # The words of the page's own `denied` screen, so that a reload reads the same.
    default_message = (
        "Your therapist could not let you in to this session. "
        "Please contact them if you have questions."
    )


class Unauthorized(SessionroomError):
    code = "unauthorized"
    http_status = 401
    default_message = "A valid API key is required."


# Refusals of one message: the socket stays open.
class Forbidden(SessionroomError):
    code = "forbidden"
    http_status = 403
    default_message = "Your role may not do that."


class BadMessage(SessionroomError):
    code = "bad_message"
    http_status = 400
    default_message = "The message could not be understood."


class MessageTooLarge(SessionroomError):
    code = "message_too_large"
    http_status = 413
    default_message = "The message is too large."


class ChatTooLong(SessionroomError):
    code = "chat_too_long"
    http_status = 400
    default_message = "A chat message may be at most 2,000 characters."


class NotAllowed(SessionroomError):
    code = "not_allowed"
    http_status = 409
    default_message = "That is not possible right now."


class NotFound(SessionroomError):
    code = "not_found"
    http_status = 404
    default_message = "No such participant or room."


class Conflict(SessionroomError):
    code = "conflict"
    http_status = 409
    default_message = "Someone else already acted on this."


class RoomFull(SessionroomError):
    code = "room_full"
    http_status = 409
    default_message = "The room is full."


class RateLimited(SessionroomError):
    code = "rate_limited"
    http_status = 429
    default_message = "Too many messages; slow down."


class TooManyConnections(SessionroomError):
    """A socket past the cap on open sockets per client address: refused at once."""

    code = "too_many_connections"
    http_status = 429
    closes = True
    default_message = (
        "Too many connections from your network are open; close another tab or try again shortly."
    )


class ServiceUnavailable(SessionroomError):
    """The shared store is briefly out of reach. A `join` refused this way closes the
    socket (it never joined); any other message is refused and the socket stays."""

    code = "service_unavailable"
    http_status = 503
    default_message = "The service is temporarily unavailable; try again shortly."


class StateLost(ServiceUnavailable):
    """An open socket's room, or its place in it, is gone with the store's data: the socket
    closes, and the page joins afresh."""

    closes = True
    default_message = "This session's state was lost; reconnecting."


class InvalidTransition(SessionroomError):
    """A waiting-room event that the participant's state does not allow."""

    code = "not_allowed"
    http_status = 409
    default_message = "That is not possible in the participant's current state."


# Recording: refusals of one message.
class RecordingDisabled(SessionroomError):
    code = "recording_disabled"
    http_status = 409
    default_message = "Recording is turned off for this room."


class RecordingNotActive(SessionroomError):
    code = "recording_not_active"
    http_status = 409
    default_message = "Recording is not on: every participant must say yes first."


class RecordingCodecUnsupported(SessionroomError):
    code = "recording_codec_unsupported"
    http_status = 415
    default_message = "This browser cannot send video in a format the recorder keeps (VP8)."
