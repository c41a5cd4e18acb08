"""The waiting room as a pure state machine: (participant state, event) -> participant state.

waiting -> admitted | denied | left | expired; admitted -> left | expired. No I/O here;
room_rules applies it to whole rooms and the store applies those atomically.
"""

from __future__ import annotations

from enum import StrEnum

from signaling.core.errors import InvalidTransition
from signaling.core.model import ParticipantState


class LobbyEvent(StrEnum):
    ADMIT = "admit"
    DENY = "deny"
    LEAVE = "leave"
    EXPIRE = "expire"


_TRANSITIONS: dict[tuple[ParticipantState, LobbyEvent], ParticipantState] = {
    (ParticipantState.WAITING, LobbyEvent.ADMIT): ParticipantState.ADMITTED,
    (ParticipantState.WAITING, LobbyEvent.DENY): ParticipantState.DENIED,
    (ParticipantState.WAITING, LobbyEvent.LEAVE): ParticipantState.LEFT,
    (ParticipantState.WAITING, LobbyEvent.EXPIRE): ParticipantState.EXPIRED,
    (ParticipantState.ADMITTED, LobbyEvent.LEAVE): ParticipantState.LEFT,
    (ParticipantState.ADMITTED, LobbyEvent.EXPIRE): ParticipantState.EXPIRED,
}


def next_state(state: ParticipantState, event: LobbyEvent) -> ParticipantState:
    try:
        return _TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(f"Cannot {event} a participant who is {state}.") from None
