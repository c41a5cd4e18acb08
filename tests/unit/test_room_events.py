"""The typed events the room rules return: exactly which, with which fields, never a name or a
text, round-tripping through a dict, and (a property) always telling the whole story of who
waits, who is in the room and who was turned away."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from signaling.core import events
from signaling.core import gate as recording_gate
from signaling.core import room_rules as rules
from signaling.core.errors import SessionroomError
from signaling.core.events import (
    Admission,
    ConsentAnswered,
    ConsentAsked,
    Departure,
    NoticePosted,
    ParticipantAdmitted,
    ParticipantAllowed,
    ParticipantDenied,
    ParticipantLeft,
    ParticipantReconnecting,
    ParticipantResumed,
    ParticipantWaiting,
    RecordingRequested,
    RecordingStarted,
    RecordingStopped,
    RoomEvent,
    RoomOpened,
    SessionEnded,
)
from signaling.core.gate import Reason, Status
from signaling.core.model import Participant, ParticipantState, Role, RoomSettings, RoomState
from signaling.core.room_rules import Change

C = Role.CLIENT
T = Role.THERAPIST


def person(
    pid: str,
    role: Role = C,
    link: str | None = None,
    *,
    name: str | None = None,
    at: float = 100.0,
) -> Participant:
    return Participant(
        id=pid,
        role=role,
        identity=f"id-{pid}",
        display_name=name or pid.upper(),
        state=ParticipantState.WAITING,
        link_id=link or f"link-{pid}",
        resume_hash="h",
        joined_at=at,
        node="n1",
    )


def room(settings: RoomSettings | None = None) -> RoomState:
    return RoomState(id="r", settings=settings or RoomSettings(), created_at=1.0, origin="api")


def with_therapist(r: RoomState | None = None) -> RoomState:
    return rules.join(r or room(), person("t", T)).room


def with_client_in(r: RoomState | None = None, link: str = "L") -> RoomState:
    """A therapist and client `c` (on link `link`) both in the room."""
    change = rules.join(r or with_therapist(), person("c", link=link))
    if change.after is not None and change.after.in_room:
        return change.room
    return rules.admit(change.room, "t", "c", now=5.0).room


def some(change: Change | None) -> Change:
    assert change is not None
    return change


# ---- 1. each rule's events ----


def test_open_room_announces_only_a_new_room() -> None:
    opened = rules.open_room(None, "r", RoomSettings(), 5.0, "link", expires_at=9.0)
    assert opened.events == (RoomOpened("r", 5.0, "link"),)
    again = rules.open_room(opened.room, "r", RoomSettings(), 6.0, "api")
    assert again.events == ()


def test_join_a_therapist_goes_in_on_join() -> None:
    change = rules.join(room(), person("t", T))
    assert change.events == (ParticipantAdmitted("r", 100.0, "t", T, Admission.ON_JOIN, None),)


def test_join_a_client_waits() -> None:
    change = rules.join(with_therapist(), person("c", at=120.0))
    assert change.events == (ParticipantWaiting("r", 120.0, "c", C, False),)


def test_join_without_a_waiting_room_goes_in_on_join() -> None:
    r = with_therapist(room(RoomSettings(waiting_room=False)))
    change = rules.join(r, person("c", at=120.0))
    assert change.events == (ParticipantAdmitted("r", 120.0, "c", C, Admission.ON_JOIN, None),)


def test_join_on_a_new_device_waits_as_one() -> None:
    r = with_client_in()
    change = rules.join(r, person("n", link="L", at=130.0), new_device=True)
    assert change.events == (ParticipantWaiting("r", 130.0, "n", C, True),)


def test_a_new_device_displaces_an_earlier_pending_one() -> None:
    r = rules.join(with_client_in(), person("n1", link="L"), new_device=True).room
    r = some(rules.disconnect(r, "n1", 1, 110.0)).room
    change = rules.join(r, person("n2", link="L", at=140.0), new_device=True)
    assert change.events == (
        ParticipantLeft("r", 140.0, "n1", C, Departure.REPLACED, False, None, "n2"),
        ParticipantWaiting("r", 140.0, "n2", C, True),
    )
    assert change.replaced is not None and change.replaced.id == "n1"


def test_reconnect_over_a_live_socket_names_it() -> None:
    change = rules.reconnect(with_client_in(), "c", "n2", now=50.0)
    assert change.events == (ParticipantResumed("r", 50.0, "c", C, True, 1),)


def test_reconnect_after_a_drop_has_no_open_connection() -> None:
    r = rules.join(with_therapist(), person("c")).room
    r = some(rules.disconnect(r, "c", 1, 40.0)).room
    change = rules.reconnect(r, "c", "n2", now=50.0)
    assert change.events == (ParticipantResumed("r", 50.0, "c", C, False, None),)
    # The next drop is of the new connection.
    again = some(rules.disconnect(change.room, "c", 2, 60.0))
    assert again.events == (ParticipantReconnecting("r", 60.0, "c", C, False, 2),)


def test_disconnect_names_the_dropped_connection() -> None:
    change = some(rules.disconnect(with_client_in(), "c", 1, 40.0))
    assert change.events == (ParticipantReconnecting("r", 40.0, "c", C, True, 1),)


def test_expire_is_a_timeout() -> None:
    r = some(rules.disconnect(with_client_in(), "c", 1, 40.0)).room
    change = some(rules.expire(r, "c", 1, now=70.0))
    assert change.events == (ParticipantLeft("r", 70.0, "c", C, Departure.TIMEOUT, True),)


def test_leave_of_a_waiting_client() -> None:
    r = rules.join(with_therapist(), person("c")).room
    change = some(rules.leave(r, "c", now=70.0))
    assert change.events == (ParticipantLeft("r", 70.0, "c", C, Departure.LEFT, False),)


def test_leave_of_a_therapist_in_the_room() -> None:
    change = some(rules.leave(with_therapist(), "t", now=70.0))
    assert change.events == (ParticipantLeft("r", 70.0, "t", T, Departure.LEFT, True),)


def test_admit_is_by_the_therapist() -> None:
    r = rules.join(with_therapist(), person("c")).room
    change = rules.admit(r, "t", "c", now=60.0)
    assert change.events == (ParticipantAdmitted("r", 60.0, "c", C, Admission.BY_THERAPIST, "t"),)


def test_admitting_a_new_device_replaces_the_live_place() -> None:
    r = rules.join(with_client_in(), person("n", link="L"), new_device=True).room
    change = rules.admit(r, "t", "n", now=60.0)
    assert change.events == (
        ParticipantLeft("r", 60.0, "c", C, Departure.REPLACED, True, 1, "n"),
        ParticipantAdmitted("r", 60.0, "n", C, Admission.BY_THERAPIST, "t"),
    )


def test_admitting_a_new_device_replaces_a_dropped_place_without_a_connection() -> None:
    r = some(rules.disconnect(with_client_in(), "c", 1, 40.0)).room
    r = rules.join(r, person("n", link="L")).room
    change = rules.admit(r, "t", "n", now=60.0)
    assert change.events == (
        ParticipantLeft("r", 60.0, "c", C, Departure.REPLACED, True, None, "n"),
        ParticipantAdmitted("r", 60.0, "n", C, Admission.BY_THERAPIST, "t"),
    )


def test_deny() -> None:
    r = rules.join(with_therapist(), person("c")).room
    change = rules.deny(r, "t", "c", "Please book again.", 60.0)
    assert change.events == (ParticipantDenied("r", 60.0, "c", "t"),)


def test_allow() -> None:
    r = rules.join(with_therapist(), person("c")).room
    r = rules.deny(r, "t", "c", "", 60.0).room
    change = rules.allow(r, "t", "c", now=61.0)
    assert change.events == (ParticipantAllowed("r", 61.0, "c", "t"),)


def test_set_notice_carries_no_text() -> None:
    change = rules.set_notice(with_therapist(), "t", "Five minutes", now=30.0)
    assert change.events == (NoticePosted("r", 30.0, "t"),)


def test_end_names_everyone_and_the_dropped() -> None:
    r = rules.join(with_therapist(), person("c")).room
    r = some(rules.disconnect(r, "c", 1, 40.0)).room
    assert rules.end(r, 99.0, "t").events == (SessionEnded("r", 99.0, "t", ("t", "c"), ("c",)),)
    assert rules.end(r, 99.0).events == (SessionEnded("r", 99.0, None, ("t", "c"), ("c",)),)


def test_a_departure_frees_a_pending_device_to_wait() -> None:
    r = some(rules.disconnect(with_client_in(), "c", 1, 40.0)).room
    r = rules.join(r, person("n", link="L")).room
    change = some(rules.expire(r, "c", 1, now=70.0))
    assert change.events == (
        ParticipantLeft("r", 70.0, "c", C, Departure.TIMEOUT, True),
        ParticipantWaiting("r", 70.0, "n", C, False),
    )


def test_a_departure_admits_a_pending_device_without_a_waiting_room() -> None:
    r = with_client_in(with_therapist(room(RoomSettings(waiting_room=False))))
    r = rules.join(r, person("n", link="L"), new_device=True).room
    change = some(rules.leave(r, "c", now=70.0))
    assert change.events == (
        ParticipantLeft("r", 70.0, "c", C, Departure.LEFT, True),
        ParticipantAdmitted("r", 70.0, "n", C, Admission.PLACE_FREED, None),
    )
    # No gate open: following it adds nothing.
    assert rules.follow_gate(change, 70.0).events == change.events


def test_denying_the_holder_turns_its_pending_device_away_too() -> None:
    r = rules.join(with_therapist(), person("c", link="L")).room
    r = rules.join(r, person("n", link="L"), new_device=True).room
    change = rules.deny(r, "t", "c", "", 60.0)
    assert change.events == (
        ParticipantDenied("r", 60.0, "c", "t"),
        ParticipantDenied("r", 60.0, "n", "t"),
    )
    assert change.room.waiting == ()


# ---- 2. the recording gate ----


def requested(r: RoomState, *, yes: tuple[str, ...] = ()) -> RoomState:
    """A request `q1` by `t` to everyone in the room, answered yes by `yes`."""
    present = tuple(p.id for p in r.admitted)
    change = recording_gate.request(
        r.recording, by="t", present=present, request_id="q1", now=20.0, new_recording="rec-1"
    )
    r = replace(r, recording=change.gate)
    for pid in yes:
        answered = recording_gate.answer(
            r.recording,
            participant=pid,
            request_id="q1",
            granted=True,
            now=21.0,
            new_recording="rec-1",
        )
        r = replace(r, recording=answered.gate)
    return r


def test_a_client_leaving_an_open_request_stops_it() -> None:
    r = requested(with_client_in())
    assert r.recording.status is Status.PENDING
    change = rules.follow_gate(some(rules.leave(r, "c", now=70.0)), 70.0)
    assert change.events == (
        ParticipantLeft("r", 70.0, "c", C, Departure.LEFT, True),
        RecordingStopped("r", 70.0, "q1", None, Reason.PARTICIPANT_LEFT, "c"),
    )
    assert change.room.recording.status is Status.STOPPED


def test_a_newcomer_admitted_while_recording_pauses_it_and_is_asked() -> None:
    r = with_client_in(with_therapist(room(RoomSettings(max_clients=2))))
    r = requested(r, yes=("t", "c"))
    assert r.recording.status is Status.RECORDING and r.recording.recording == "rec-1"
    r = rules.join(r, person("c2")).room
    change = rules.follow_gate(rules.admit(r, "t", "c2", now=80.0), 80.0)
    assert change.events == (
        ParticipantAdmitted("r", 80.0, "c2", C, Admission.BY_THERAPIST, "t"),
        ConsentAsked("r", 80.0, "q1", "c2"),
        RecordingStopped("r", 80.0, "q1", "rec-1", Reason.PARTICIPANT_JOINED, "c2"),
    )
    assert change.room.recording.status is Status.PENDING


def test_a_new_device_replacing_an_asked_place_stops_the_request() -> None:
    r = requested(with_client_in())
    r = rules.join(r, person("n", link="L"), new_device=True).room
    change = rules.follow_gate(rules.admit(r, "t", "n", now=80.0), 80.0)
    assert change.events == (
        ParticipantLeft("r", 80.0, "c", C, Departure.REPLACED, True, 1, "n"),
        ParticipantAdmitted("r", 80.0, "n", C, Admission.BY_THERAPIST, "t"),
        RecordingStopped("r", 80.0, "q1", None, Reason.PARTICIPANT_LEFT, "c"),
    )


def test_ending_a_recording_room_stops_the_recording_first() -> None:
    r = requested(with_client_in(), yes=("t", "c"))
    change = rules.end(r, 99.0, "t")
    assert change.events == (
        RecordingStopped("r", 99.0, "q1", "rec-1", Reason.SESSION_ENDED, None),
        SessionEnded("r", 99.0, "t", ("t", "c"), ()),
    )


# ---- 3 and 4. privacy and round trips ----

SECRETS = (
    "Alice Example",
    "Bob Example",
    "Dr Tess Therapist",
    "Carol Newdevice",
    "Back in five minutes, Alice",
    "Sorry Bob, please book again",
)


def every_kind_of_event() -> list[RoomEvent]:
    """A run through every rule (and the gate) with names, a notice and a denial message."""
    out: list[RoomEvent] = []

    def take(change: Change | None) -> RoomState:
        change = some(change)
        out.extend(change.events)
        return change.room

    r = take(rules.open_room(None, "r", RoomSettings(max_clients=2), 1.0, "link"))
    r = take(rules.join(r, person("t", T, name="Dr Tess Therapist")))
    r = take(rules.join(r, person("a", link="LA", name="Alice Example")))
    r = take(rules.join(r, person("b", link="LB", name="Bob Example")))
    r = take(rules.set_notice(r, "t", "Back in five minutes, Alice", now=2.0))
    r = take(rules.deny(r, "t", "b", "Sorry Bob, please book again", 3.0))
    r = take(rules.allow(r, "t", "b", now=4.0))
    r = take(rules.follow_gate(rules.admit(r, "t", "a", now=5.0), 5.0))
    moved = recording_gate.request(
        r.recording, by="t", present=("t", "a"), request_id="q1", now=6.0, new_recording="rec-1"
    )
    r = replace(r, recording=moved.gate)
    out.extend(events.gate_events(r, moved, 6.0, requested=True))
    for pid in ("t", "a"):
        moved = recording_gate.answer(
            r.recording,
            participant=pid,
            request_id="q1",
            granted=True,
            now=7.0,
            new_recording="rec-1",
        )
        r = replace(r, recording=moved.gate)
        out.extend(events.gate_events(r, moved, 7.0, answered=(pid, True)))
    r = take(rules.join(r, person("b1", link="LB", name="Bob Example")))
    r = take(rules.follow_gate(rules.admit(r, "t", "b1", now=7.5), 7.5))
    r = take(rules.follow_gate(some(rules.leave(r, "b1", now=7.6)), 7.6))
    r = take(rules.join(r, person("a2", link="LA", name="Carol Newdevice"), new_device=True))
    r = take(rules.follow_gate(rules.admit(r, "t", "a2", now=8.0), 8.0))
    r = take(rules.disconnect(r, "a2", 1, 9.0))
    r = take(rules.reconnect(r, "a2", "n2", now=10.0))
    r = take(rules.join(r, person("b2", link="LB", name="Bob Example")))
    r = take(rules.disconnect(r, "b2", 1, 11.0))
    r = take(rules.follow_gate(some(rules.expire(r, "b2", 1, now=12.0)), 12.0))
    r = take(rules.join(r, person("b3", link="LB", name="Bob Example")))
    r = take(rules.follow_gate(some(rules.leave(r, "b3", now=13.0)), 13.0))
    r = take(rules.end(r, 14.0, "t"))
    return out


def test_the_run_covers_every_kind_of_event() -> None:
    assert {type(e) for e in every_kind_of_event()} == set(events.EVENT_TYPES.values())


def test_events_never_carry_a_name_a_notice_or_a_message() -> None:
    produced = every_kind_of_event()
    assert produced
    for e in produced:
        text = json.dumps(e.to_dict())
        for secret in SECRETS:
            assert secret not in text, (secret, e)


def test_events_round_trip_through_a_dict() -> None:
    for e in every_kind_of_event():
        assert events.event_from_dict(e.to_dict()) == e
        assert events.event_from_dict(json.loads(json.dumps(e.to_dict()))) == e


def test_the_run_round_trips_the_gate_events_with_their_fields() -> None:
    produced = every_kind_of_event()
    assert RecordingRequested("r", 6.0, "q1", "t", ("t", "a")) in produced
    assert ConsentAnswered("r", 7.0, "q1", "a", True) in produced
    assert RecordingStarted("r", 7.0, "q1", "rec-1") in produced


@pytest.mark.parametrize("data", [{"type": "room_exploded", "room": "r", "at": 1.0}, {}])
def test_an_unknown_event_type_is_a_value_error(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        events.event_from_dict(data)


# ---- 5. the events tell the whole membership story ----


@dataclass
class Fold:
    waiting: set[str] = field(default_factory=set)
    admitted: set[str] = field(default_factory=set)
    denied: set[str] = field(default_factory=set)

    def apply(self, produced: Iterable[RoomEvent]) -> None:
        for e in produced:
            if isinstance(e, ParticipantWaiting):
                self.waiting.add(e.participant)
            elif isinstance(e, ParticipantAdmitted):
                self.waiting.discard(e.participant)
                self.admitted.add(e.participant)
            elif isinstance(e, ParticipantDenied):
                self.waiting.discard(e.participant)
                self.denied.add(e.participant)
            elif isinstance(e, ParticipantAllowed):
                self.denied.discard(e.participant)
            elif isinstance(e, ParticipantLeft):
                self.waiting.discard(e.participant)
                self.admitted.discard(e.participant)
            elif isinstance(e, SessionEnded):
                self.waiting.clear()
                self.admitted.clear()
                self.denied.clear()

    def check(self, r: RoomState) -> None:
        assert self.waiting == {p.id for p in r.waiting}
        assert self.admitted == {p.id for p in r.admitted}
        # The room keeps one denial per link, the newest few (DENIED_KEPT): every one it keeps
        # was announced and not since allowed; events tell of the superseded ones too.
        assert {d.participant for d in r.denied} <= self.denied


OPS = (
    "join_client",
    "join_therapist",
    "admit",
    "deny",
    "allow",
    "leave",
    "disconnect",
    "expire",
    "reconnect",
    "request",
    "answer",
    "end",
)

Op = tuple[str, int, int, bool]


def step(r: RoomState, op: Op, i: int) -> Change | None:
    """One act as the service would apply it (signaling/admission.py, presence.py,
    recording_requests.py), following the gate where it does."""
    kind, a, b, flag = op
    now = 10.0 * (i + 1)
    people = r.participants
    target = people[a % len(people)] if people else None
    therapists = r.therapists
    actor = therapists[b % len(therapists)].id if therapists else None
    if kind in ("join_client", "join_therapist"):
        role = C if kind == "join_client" else T
        link = f"L{a % 2}" if role is C else f"T{a % 2}"
        if rules.link_denial(r, link) is not None:
            return None  # admission.join refuses a turned-away link
        newcomer = person(f"p{i}", role, link, at=now)
        return rules.follow_gate(rules.join(r, newcomer, new_device=flag), now)
    if kind == "end":
        return rules.end(r, now, actor)
    if kind == "allow":
        if not r.denied or actor is None:
            return None
        return rules.allow(r, actor, r.denied[a % len(r.denied)].participant, now=now)
    if kind == "request":
        if actor is None:
            return None
        rules.require_open(r)
        moved = recording_gate.request(
            r.recording,
            by=actor,
            present=tuple(p.id for p in r.admitted),
            request_id=f"q{i}",
            now=now,
            new_recording=f"rec-{i}",
        )
        gated = replace(r, recording=moved.gate)
        return Change(
            gated, gate=moved, events=events.gate_events(gated, moved, now, requested=True)
        )
    if kind in ("admit", "deny") and r.waiting:
        # A therapist acts on someone waiting (anyone else is a Conflict: that too, now and then).
        target = r.waiting[a % len(r.waiting)] if a % 5 else target
    if target is None:
        return None
    if kind == "admit":
        return (
            None
            if actor is None
            else rules.follow_gate(rules.admit(r, actor, target.id, now=now), now)
        )
    if kind == "deny":
        return None if actor is None else rules.deny(r, actor, target.id, "", now)
    if kind == "leave":
        change = rules.leave(r, target.id, now=now)
        return None if change is None else rules.follow_gate(change, now)
    if kind == "disconnect":
        return rules.disconnect(r, target.id, target.connection - (0 if flag else 1), now)
    if kind == "expire":
        change = rules.expire(r, target.id, target.connection - (0 if flag else 1), now=now)
        return None if change is None else rules.follow_gate(change, now)
    if kind == "reconnect":
        return rules.reconnect(r, target.id, "n2", now=now)
    assert kind == "answer"
    if not target.in_room:
        return None
    moved = recording_gate.answer(
        r.recording,
        participant=target.id,
        request_id=r.recording.request or "",
        granted=flag or b % 4 != 0,
        now=now,
        new_recording=f"rec-{i}",
    )
    gated = replace(r, recording=moved.gate)
    answered = (target.id, flag or b % 4 != 0)
    return Change(
        gated, gate=moved, events=events.gate_events(gated, moved, now, answered=answered)
    )


# Everything acts on people in the room: joins, and the therapist's acts on them, come oftener.
WEIGHTED_OPS = (*OPS, "join_client", "join_client", "deny", "deny")

ops_strategy = st.lists(
    st.tuples(st.sampled_from(WEIGHTED_OPS), st.integers(0, 5), st.integers(0, 5), st.booleans()),
    min_size=10,
    max_size=25,
)
settings_strategy = st.builds(
    RoomSettings, max_clients=st.integers(1, 3), waiting_room=st.booleans()
)


@settings(max_examples=200, deadline=None)
@given(room_settings=settings_strategy, ops=ops_strategy)
def test_events_fold_into_the_room_membership(room_settings: RoomSettings, ops: list[Op]) -> None:
    opened = rules.open_room(None, "r", room_settings, 1.0, "api")
    fold = Fold()
    fold.apply(opened.events)
    fold.check(opened.room)
    # A therapist is there from the start (more may come, and this one may go).
    first = rules.join(opened.room, person("t", T, "T0", at=1.0))
    fold.apply(first.events)
    r = first.room
    fold.check(r)
    for i, op in enumerate(ops):
        try:
            change = step(r, op, i)
        except SessionroomError:
            continue
        if change is None:
            continue
        note(f"{i}: {op} -> {[e.to_dict() for e in change.events]}")
        fold.apply(change.events)
        r = change.room
        fold.check(r)
