from __future__ import annotations

import pytest

from signaling.core import gate as g
from signaling.core.errors import Conflict, NotAllowed
from signaling.core.gate import Gate, Reason, Status


def _asked(present: tuple[str, ...] = ("t", "c")) -> Gate:
    change = g.request(
        Gate(), by="t", present=present, request_id="q1", now=1.0, new_recording="r1"
    )
    assert change.ask == present
    return change.gate


def _yes(gate: Gate, who: str, rec: str = "r1", now: float = 2.0) -> g.GateChange:
    return g.answer(
        gate, participant=who, request_id="q1", granted=True, now=now, new_recording=rec
    )


def _recording() -> Gate:
    gate = _yes(_asked(), "t").gate
    change = _yes(gate, "c")
    assert change.started == "r1"
    return change.gate


def test_request_asks_everyone_and_waits() -> None:
    gate = _asked()
    assert gate.status is Status.PENDING
    assert gate.answers == (("t", None), ("c", None))
    assert gate.recording is None


def test_starts_only_when_everyone_said_yes() -> None:
    half = _yes(_asked(), "t")
    assert half.gate.status is Status.PENDING and half.started is None
    full = _yes(half.gate, "c")
    assert full.gate.status is Status.RECORDING
    assert full.started == "r1" == full.gate.recording
    assert full.gate.started_at == 2.0


def test_a_no_ends_the_request_without_recording() -> None:
    change = g.answer(
        _yes(_asked(), "t").gate,
        participant="c",
        request_id="q1",
        granted=False,
        now=3.0,
        new_recording="r1",
    )
    assert change.gate.status is Status.STOPPED
    assert change.gate.reason is Reason.DECLINED
    assert change.started is None and change.stopped is None


def test_withdrawal_stops_the_recording() -> None:
    change = g.answer(
        _recording(), participant="c", request_id="q1", granted=False, now=5.0, new_recording="x"
    )
    assert change.gate.status is Status.STOPPED
    assert change.stopped == "r1"
    assert change.stop_reason is Reason.WITHDRAWN
    assert change.gate.by == "c" and change.gate.at == 5.0


def test_a_second_request_while_one_is_open_is_refused() -> None:
    with pytest.raises(Conflict):
        g.request(_asked(), by="t", present=("t",), request_id="q2", now=2, new_recording="r2")


def test_answers_to_a_stale_or_missing_request_are_refused() -> None:
    with pytest.raises(NotAllowed):
        _yes(Gate(), "c")
    with pytest.raises(Conflict):
        g.answer(
            _asked(), participant="c", request_id="old", granted=True, now=2, new_recording="r"
        )
    with pytest.raises(NotAllowed):
        _yes(_asked(), "stranger")


def test_newcomer_stops_recording_until_they_say_yes() -> None:
    change = g.participant_entered(_recording(), participant="n", now=6.0)
    assert change is not None
    assert change.stopped == "r1" and change.stop_reason is Reason.PARTICIPANT_JOINED
    assert change.gate.status is Status.PENDING
    assert change.ask == ("n",)
    # The others' yes stands: the newcomer's yes starts a new recording.
    resumed = _yes(change.gate, "n", rec="r2", now=7.0)
    assert resumed.started == "r2" and resumed.gate.status is Status.RECORDING


def test_newcomer_during_a_pending_request_is_asked_too() -> None:
    change = g.participant_entered(_asked(), participant="n", now=2.0)
    assert change is not None and change.ask == ("n",) and change.stopped is None
    assert change.gate.answers[-1] == ("n", None)


def test_leaving_ends_the_request() -> None:
    change = g.participant_left(_recording(), participant="c", now=8.0)
    assert change is not None
    assert change.stopped == "r1" and change.stop_reason is Reason.PARTICIPANT_LEFT
    assert g.participant_left(Gate(), participant="c", now=8.0) is None


def test_therapist_stop_and_end_of_session() -> None:
    stopped = g.stop(_recording(), by="t", now=9.0)
    assert stopped.stop_reason is Reason.STOPPED_BY_THERAPIST
    with pytest.raises(NotAllowed):
        g.stop(stopped.gate, by="t", now=9.5)
    ended = g.shut(_recording(), reason=Reason.SESSION_ENDED, now=10.0)
    assert ended is not None and ended.stopped == "r1"
    assert g.shut(Gate(), reason=Reason.SESSION_ENDED, now=10.0) is None


def test_round_trips_through_a_dict() -> None:
    gate = _recording()
    assert Gate.from_dict(gate.to_dict()) == gate
    assert Gate.from_dict(None) == Gate()
