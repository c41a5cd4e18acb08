"""The waiting room's state machine (signaling/core/lobby.py), by what it guarantees rather than
by its table: nobody goes back to waiting, whoever is gone stays gone, only someone waiting is
let in or turned away, anyone still here can always go, and a participant's life is short.
Random sequences of acts on whole rooms are tests/unit/test_room_machine.py."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.core import room_rules as rules
from signaling.core.errors import Conflict, InvalidTransition
from signaling.core.lobby import LobbyEvent, next_state
from signaling.core.model import Participant, ParticipantState, Role, RoomSettings

WAITING = ParticipantState.WAITING
STILL_HERE = (ParticipantState.WAITING, ParticipantState.ADMITTED)
GONE = tuple(s for s in ParticipantState if s not in STILL_HERE)


def _moves(state: ParticipantState, event: LobbyEvent) -> ParticipantState | None:
    """Where `event` takes someone in `state`; None if it is refused."""
    try:
        return next_state(state, event)
    except InvalidTransition:
        return None


def _in_room(state: ParticipantState) -> bool:
    return Participant(
        id="p",
        role=Role.CLIENT,
        identity="i",
        display_name="P",
        state=state,
        link_id="L",
        resume_hash="h",
        joined_at=0.0,
        node="n",
    ).in_room


@pytest.mark.parametrize("state", list(ParticipantState))
@pytest.mark.parametrize("event", list(LobbyEvent))
def test_nobody_goes_back_to_waiting(state: ParticipantState, event: LobbyEvent) -> None:
    # A link that comes back is a new participant: one's own waiting happens once.
    assert _moves(state, event) is not WAITING


@pytest.mark.parametrize("state", GONE)
@pytest.mark.parametrize("event", list(LobbyEvent))
def test_whoever_is_gone_stays_gone(state: ParticipantState, event: LobbyEvent) -> None:
    with pytest.raises(InvalidTransition) as refused:
        next_state(state, event)
    # The refusal says what was tried on whom.
    assert str(event) in str(refused.value) and str(state) in str(refused.value)


@pytest.mark.parametrize("state", [s for s in ParticipantState if s is not WAITING])
@pytest.mark.parametrize("event", [LobbyEvent.ADMIT, LobbyEvent.DENY])
def test_only_someone_waiting_is_let_in_or_turned_away(
    state: ParticipantState, event: LobbyEvent
) -> None:
    assert _moves(state, event) is None


def test_letting_in_puts_in_the_room_and_turning_away_does_not() -> None:
    admitted = _moves(WAITING, LobbyEvent.ADMIT)
    denied = _moves(WAITING, LobbyEvent.DENY)
    assert admitted is not None and _in_room(admitted) and admitted in STILL_HERE
    assert denied is not None and not _in_room(denied) and denied in GONE


@pytest.mark.parametrize("state", STILL_HERE)
def test_anyone_still_here_can_always_go(state: ParticipantState) -> None:
    left, timed_out = _moves(state, LobbyEvent.LEAVE), _moves(state, LobbyEvent.EXPIRE)
    assert left in GONE and timed_out in GONE
    # Leaving and running out of time stay told apart, and neither depends on where one was.
    assert left != timed_out
    assert left == _moves(WAITING, LobbyEvent.LEAVE)
    assert timed_out == _moves(WAITING, LobbyEvent.EXPIRE)


@given(st.lists(st.sampled_from(LobbyEvent), max_size=12))
def test_a_participant_moves_at_most_twice_and_ends_where_it_stops(
    events: list[LobbyEvent],
) -> None:
    """Whatever is tried, in whatever order: waiting, perhaps in the room, then gone; after
    that, every event is refused."""
    state, path = WAITING, [WAITING]
    for event in events:
        moved = _moves(state, event)
        if moved is not None:
            state = moved
            path.append(state)
    assert len(path) <= 3, path
    assert all(s in STILL_HERE for s in path[:-1]), path
    if len(path) == 3:
        assert _in_room(path[1]) and path[2] in GONE
    if state in GONE:
        assert all(_moves(state, e) is None for e in LobbyEvent)


def test_turning_away_someone_already_in_the_room_is_a_conflict_for_the_therapist() -> None:
    """On the wire a refused move is `conflict` (someone acted first), not a server fault."""

    def person(pid: str, role: Role) -> Participant:
        return Participant(
            id=pid,
            role=role,
            identity=pid,
            display_name=pid,
            state=WAITING,
            link_id=f"link-{pid}",
            resume_hash="h",
            joined_at=1.0,
            node="n",
        )

    room = rules.open_room(None, "r", RoomSettings(), 0.0, "api").room
    room = rules.join(room, person("t", Role.THERAPIST)).room
    room = rules.join(room, person("c", Role.CLIENT)).room
    room = rules.admit(room, "t", "c", now=2.0).room
    with pytest.raises(Conflict):
        rules.deny(room, "t", "c", "", 3.0)
    with pytest.raises(Conflict):
        rules.admit(room, "t", "c", now=3.0)
