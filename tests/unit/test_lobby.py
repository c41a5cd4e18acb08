from __future__ import annotations

import pytest

from signaling.core.errors import InvalidTransition
from signaling.core.lobby import LobbyEvent, next_state
from signaling.core.model import ParticipantState as S

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
