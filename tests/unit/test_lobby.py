from __future__ import annotations

import pytest

from signaling.errors import InvalidTransition
from signaling.lobby import LobbyEvent, is_final, next_state
from signaling.model import ParticipantState as S

ALLOWED = {
    (S.WAITING, LobbyEvent.ADMIT): S.ADMITTED,
    (S.WAITING, LobbyEvent.DENY): S.DENIED,
    (S.WAITING, LobbyEvent.LEAVE): S.LEFT,
    (S.WAITING, LobbyEvent.EXPIRE): S.EXPIRED,
    (S.ADMITTED, LobbyEvent.LEAVE): S.LEFT,
    (S.ADMITTED, LobbyEvent.EXPIRE): S.EXPIRED,
}


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("event", list(LobbyEvent))
def test_every_transition(state: S, event: LobbyEvent) -> None:
    expected = ALLOWED.get((state, event))
    if expected is None:
        with pytest.raises(InvalidTransition):
            next_state(state, event)
    else:
        assert next_state(state, event) is expected


def test_final_states_have_no_way_out() -> None:
    for state in S:
        if is_final(state):
            assert not any(next_state_or_none(state, e) for e in LobbyEvent)


def next_state_or_none(state: S, event: LobbyEvent) -> S | None:
    try:
        return next_state(state, event)
    except InvalidTransition:
        return None
