from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from signaling.core import room_rules as rules
from signaling.core.errors import (
    Conflict,
    Forbidden,
    LinkInUse,
    NotAllowed,
    NotFound,
    RoomEnded,
    RoomFull,
)
from signaling.core.events import SessionEnded
from signaling.core.model import Participant, ParticipantState, Role, RoomSettings, RoomState
from signaling.messages import denied_entry


def person(pid: str, role: Role = Role.CLIENT, link: str | None = None) -> Participant:
    return Participant(
        id=pid,
        role=role,
        identity=f"id-{pid}",
        display_name=pid.upper(),
        state=ParticipantState.WAITING,
        link_id=link or f"link-{pid}",
        resume_hash="h",
        joined_at=100.0,
        node="n1",
    )


def room(settings: RoomSettings | None = None) -> RoomState:
    return RoomState(id="r", settings=settings or RoomSettings(), created_at=1.0, origin="api")


def with_therapist(r: RoomState | None = None) -> RoomState:
    return rules.join(r or room(), person("t", Role.THERAPIST)).room


def test_therapist_goes_in_and_client_waits() -> None:
    r = with_therapist()
    change = rules.join(r, person("c"))
    assert change.before is None
    assert change.after is not None and change.after.state is ParticipantState.WAITING
    assert change.after.waiting_since == 100.0
    assert [p.id for p in change.room.waiting] == ["c"]
    assert [p.id for p in change.room.therapists] == ["t"]


def test_admit_then_full() -> None:
    r = rules.join(with_therapist(), person("c1")).room
    r = rules.join(r, person("c2")).room
    r = rules.admit(r, "t", "c1", now=1.0).room
    assert r.participant("c1") is not None and r.participant("c1").in_room  # type: ignore[union-attr]
    with pytest.raises(RoomFull):
        rules.admit(r, "t", "c2", now=1.0)
    with pytest.raises(Conflict):
        rules.admit(r, "t", "c1", now=1.0)
    with pytest.raises(NotFound):
        rules.admit(r, "t", "nobody", now=1.0)


def test_only_an_admitted_therapist_admits() -> None:
    r = rules.join(with_therapist(), person("c1")).room
    r = rules.join(r, person("c2")).room
    with pytest.raises(Forbidden):
        rules.admit(r, "c1", "c2", now=1.0)
    absent = rules.disconnect(r, "t", 1, 5.0)
    assert absent is not None
    left = rules.leave(r, "t", now=1.0)
    assert left is not None
    with pytest.raises(NotFound):
        rules.admit(left.room, "t", "c1", now=1.0)


def test_deny_removes_the_participant() -> None:
    r = rules.join(with_therapist(), person("c")).room
    change = rules.deny(r, "t", "c")
    assert change.after is not None and change.after.state is ParticipantState.DENIED
    assert change.room.participant("c") is None
    with pytest.raises(NotFound):
        rules.deny(change.room, "t", "c")
    admitted = rules.admit(r, "t", "c", now=1.0).room
    with pytest.raises(Conflict):
        rules.deny(admitted, "t", "c")


def test_a_link_without_the_secret_never_takes_the_place_back() -> None:
    r = rules.join(with_therapist(), person("c", link="L")).room
    r = rules.admit(r, "t", "c", now=1.0).room
    with pytest.raises(LinkInUse):
        rules.join(r, person("c-other-device", link="L"))
    # "Join here instead": a new device waiting to replace the place.
    here = rules.join(r, person("here", link="L"), new_device=True)
    assert here.after is not None and here.after.state is ParticipantState.WAITING
    assert here.after.replaces == "c" and here.room.participant("c") is not None
    # After a drop, without the flag too; the place itself is untouched.
    away = rules.disconnect(r, "c", 1, 50.0)
    assert away is not None
    new = rules.join(away.room, replace(person("new", link="L"), resume_hash="h2"))
    assert new.after is not None and new.after.id == "new" and new.after.replaces == "c"
    held = new.room.participant("c")
    assert held is not None and held.resume_hash != "h2" and held.in_room
    # Admitting the new device replaces the place.
    admitted = rules.admit(new.room, "t", "new", now=1.0)
    assert admitted.replaced is not None and admitted.replaced.id == "c"
    assert admitted.room.participant("c") is None
    assert admitted.after is not None and admitted.after.in_room
    assert admitted.after.replaces is None


def test_a_therapist_link_holds_at_most_two_places() -> None:
    r = rules.join(with_therapist(), person("t2", Role.THERAPIST, link="link-t")).room
    assert len(r.therapists) == 2
    with pytest.raises(LinkInUse):
        rules.join(r, person("t3", Role.THERAPIST, link="link-t"))
    away = rules.disconnect(r, "t2", 1, 50.0)
    assert away is not None
    with pytest.raises(LinkInUse):
        rules.join(away.room, person("t3", Role.THERAPIST, link="link-t"))


def test_waiting_room_off_and_capacity() -> None:
    r = with_therapist(room(RoomSettings(waiting_room=False, max_clients=1)))
    change = rules.join(r, person("c1"))
    assert change.after is not None and change.after.in_room
    with pytest.raises(RoomFull):
        rules.join(change.room, person("c2"))


def test_disconnect_and_expire_only_act_on_the_current_connection() -> None:
    r = rules.join(with_therapist(), person("c")).room
    r = rules.admit(r, "t", "c", now=1.0).room
    away = rules.disconnect(r, "c", 1, 10.0)
    assert away is not None and away.after is not None and not away.after.connected
    assert rules.disconnect(away.room, "c", 1, 11.0) is None  # already away
    back = rules.reconnect(away.room, "c", "n2", now=1.0)
    assert back.after is not None and back.after.connection == 2 and back.after.node == "n2"
    # The old connection's timer fires late: nothing happens.
    assert rules.expire(back.room, "c", 1, now=1.0) is None
    assert rules.disconnect(back.room, "c", 1, 12.0) is None
    away2 = rules.disconnect(back.room, "c", 2, 13.0)
    assert away2 is not None
    gone = rules.expire(away2.room, "c", 2, now=1.0)
    assert gone is not None and gone.after is not None
    assert gone.after.state is ParticipantState.EXPIRED
    assert gone.room.participant("c") is None


def test_end_and_after() -> None:
    r = rules.join(with_therapist(), person("c")).room
    change = rules.end(r, 99.0)
    ended = change.room
    assert ended.ended and ended.participants == ()
    (ended_event,) = change.events
    assert isinstance(ended_event, SessionEnded)
    assert set(ended_event.participants) == {"t", "c"}
    acts: tuple[Callable[[], object], ...] = (
        lambda: rules.join(ended, person("x")),
        lambda: rules.admit(ended, "t", "c", now=1.0),
        lambda: rules.open_room(ended, "r", RoomSettings(), 1.0, "link"),
        lambda: rules.end(ended, 100.0),
    )
    for act in acts:
        with pytest.raises(RoomEnded):
            act()


def test_notice_needs_a_therapist_in_the_room() -> None:
    r = rules.join(with_therapist(), person("c")).room
    assert rules.set_notice(r, "t", "Five minutes", now=1.0).room.notice == "Five minutes"
    with pytest.raises(Forbidden):
        rules.set_notice(r, "c", "let me in", now=1.0)
    away = rules.disconnect(r, "t", 1, 1.0)
    assert away is not None
    assert rules.set_notice(away.room, "t", "still ok", now=1.0).room.notice == "still ok"
    with pytest.raises(NotAllowed):
        rules.set_notice(replace(r, participants=(person("t", Role.THERAPIST),)), "t", "x", now=1.0)


def test_room_state_round_trips_through_a_dict() -> None:
    r = rules.join(with_therapist(room(RoomSettings(max_clients=3))), person("c")).room
    assert RoomState.from_dict(r.to_dict()) == r


def _denied(link: str = "L", message: str = "Please book again.") -> RoomState:
    r = rules.join(with_therapist(), person("c", link=link)).room
    return rules.deny(r, "t", "c", message, now=50.0).room


def test_a_denial_binds_the_link_for_the_rooms_life() -> None:
    r = _denied()
    d = rules.link_denial(r, "L")
    assert d is not None
    assert (d.participant, d.link, d.name, d.at, d.message) == (
        "c",
        "L",
        "C",
        50.0,
        "Please book again.",
    )
    assert r.denial(participant="c") == d
    # Other links, and the therapist's, are not refused.
    assert rules.link_denial(r, "other") is None
    assert rules.link_denial(r, "link-t") is None
    assert rules.link_denial(r, "") is None
    # The lobby shows who and when, never the message.
    assert denied_entry(d) == {"id": "c", "name": "C", "at": 50.0}


def test_denials_are_one_per_link_and_bounded() -> None:
    r = _denied(message="first")
    # The same link turned away again (allowed, back, denied): one entry, the newest.
    r = rules.allow(r, "t", "c", now=1.0).room
    r = rules.join(r, person("c2", link="L")).room
    r = rules.deny(r, "t", "c2", "second", now=60.0).room
    assert [(d.participant, d.message) for d in r.denied] == [("c2", "second")]
    # Many links: the newest DENIED_KEPT are kept, the oldest go first.
    for i in range(rules.DENIED_KEPT + 3):
        r = rules.join(r, person(f"x{i}", link=f"L{i}")).room
        r = rules.deny(r, "t", f"x{i}", now=100.0 + i).room
    assert len(r.denied) == rules.DENIED_KEPT
    assert rules.link_denial(r, "L") is None
    assert rules.link_denial(r, "L2") is None
    assert rules.link_denial(r, "L3") is not None
    assert rules.link_denial(r, f"L{rules.DENIED_KEPT + 2}") is not None


def test_allow_again_is_for_a_therapist_in_the_room() -> None:
    r = _denied()
    r = rules.join(r, person("other")).room
    with pytest.raises(Forbidden):
        rules.allow(r, "other", "c", now=1.0)
    with pytest.raises(NotFound):
        rules.allow(r, "t", "nobody", now=1.0)
    away = rules.leave(r, "t", now=1.0)
    assert away is not None
    with pytest.raises(NotFound):
        rules.allow(away.room, "t", "c", now=1.0)
    allowed = rules.allow(r, "t", "c", now=1.0).room
    assert rules.link_denial(allowed, "L") is None and allowed.denial(participant="c") is None
    # Allowed again, the link joins like anyone: into the waiting room.
    back = rules.join(allowed, person("c-again", link="L"))
    assert back.after is not None and back.after.state is ParticipantState.WAITING
    with pytest.raises(NotFound):
        rules.allow(allowed, "t", "c", now=1.0)


def test_ending_the_room_forgets_its_denials() -> None:
    ended = rules.end(_denied(), 99.0).room
    assert ended.denied == ()


def test_denials_round_trip_and_old_ones_still_read() -> None:
    r = _denied()
    assert RoomState.from_dict(r.to_dict()) == r
    old = {**r.to_dict(), "denied": [["c", "Please book again."]]}
    [d] = RoomState.from_dict(old).denied
    assert (d.participant, d.link, d.message) == ("c", "", "Please book again.")
    # A denial stored before links were kept refuses no link.
    assert rules.link_denial(RoomState.from_dict(old), "") is None
