"""Every outbound message and shared view, against its documented wire shape (keys, values and
their order), and every message type built in signaling/messages.py against docs/protocol.md."""

from __future__ import annotations

import inspect
import json
import re
import typing
from pathlib import Path
from typing import Any

from signaling import messages, protocol
from signaling.core.errors import RoomFull
from signaling.core.gate import Gate, Reason, Status
from signaling.core.model import (
    Denial,
    Participant,
    ParticipantState,
    Permission,
    RecordingMode,
    Role,
    RoomSettings,
    RoomState,
)

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
SOURCE = Path(messages.__file__)

SETTINGS = {"max_clients": 2, "waiting_room": True, "recording": "consent"}
ICE = [{"urls": ["stun:stun.example.org:3478"]}]


def same(built: object, expected: dict[str, Any]) -> None:
    """Equal, and with the keys in the same order (the wire is the JSON text)."""
    assert built == expected
    assert json.dumps(built) == json.dumps(expected)


def person(
    pid: str,
    role: Role = Role.CLIENT,
    *,
    name: str = "Kim",
    state: ParticipantState = ParticipantState.ADMITTED,
    **more: Any,
) -> Participant:
    return Participant(
        id=pid,
        role=role,
        identity=f"sub-{pid}",
        display_name=name,
        state=state,
        link_id=f"link-{pid}",
        resume_hash="h",
        joined_at=100.0,
        node="n1",
        **more,
    )


THERAPIST = person("t1", Role.THERAPIST, name="Dr Lee")
CLIENT = person("c1", name="Kim", media=False)
WAITING = person(
    "c2",
    name="Sam",
    state=ParticipantState.WAITING,
    waiting_since=150.0,
    connected=False,
    replaces="c1",
)
GATE = Gate(
    status=Status.STOPPED,
    request="q-7f",
    requested_by="t1",
    answers=(("t1", True), ("c1", False)),
    recording="rec-1",
    reason=Reason.DECLINED,
    by="c1",
    at=200.0,
)
ROOM = RoomState(
    id="r-81",
    settings=RoomSettings(max_clients=2, recording=RecordingMode.CONSENT),
    created_at=10.0,
    origin="api",
    participants=(THERAPIST, CLIENT, WAITING),
    notice="Five minutes.",
    denied=(
        Denial(participant="c0", link="link-c0", name="Jo", at=50.0, message="Book again."),
        Denial(participant="old", link="", name="", at=0.0, message="stored long ago"),
    ),
    recording=GATE,
    expires_at=9000.0,
)

T1 = {"id": "t1", "role": "therapist", "name": "Dr Lee", "media": True}
C1 = {"id": "c1", "role": "client", "name": "Kim", "media": False}
C2_WAITING = {
    "id": "c2",
    "name": "Sam",
    "since": 150.0,
    "connected": False,
    "media": True,
    "new_device": True,
    "replaces": "c1",
}
DENIED = {"id": "c0", "name": "Jo", "at": 50.0}
RECORDING = {
    "status": "stopped",
    "request": "q-7f",
    "recording": "rec-1",
    "requested_by": "t1",
    "answers": {"t1": True, "c1": False},
    "reason": "declined",
    "by": "c1",
    "at": 200.0,
}


# ---------- views ----------


def test_views() -> None:
    same(messages.participant_view(THERAPIST), T1)
    same(messages.participant_view(CLIENT), C1)
    same(messages.waiting_entry(WAITING), C2_WAITING)
    plain = messages.waiting_entry(person("c3", state=ParticipantState.WAITING))
    assert (plain["new_device"], plain["replaces"], plain["since"]) == (False, None, None)
    # Never the therapist's message.
    same(messages.denied_entry(ROOM.denied[0]), DENIED)
    same(messages.recording_view(GATE), RECORDING)
    idle = messages.recording_view(Gate())
    assert idle["status"] == "idle" and idle["reason"] is None and idle["answers"] == {}


def test_room_view() -> None:
    same(
        messages.room_view(ROOM),
        {
            "id": "r-81",
            "settings": SETTINGS,
            "created_at": 10.0,
            "origin": "api",
            "ended": False,
            "expires_at": 9000.0,
            "notice": "Five minutes.",
            "waiting": [C2_WAITING],
            "in_room": [{**T1, "connected": True}, {**C1, "connected": True}],
            "recording": RECORDING,
        },
    )


# ---------- joining and the waiting room ----------


def test_joined_in_the_room_for_a_therapist() -> None:
    built = messages.joined(
        ROOM,
        THERAPIST,
        permissions=[Permission.SIGNAL, Permission.ADMIT, Permission.CHAT],
        ice_servers=ICE,
        resume="t1.secret",
        resumed=True,
    )
    same(
        built,
        {
            "type": "joined",
            "participant": {**T1, "permissions": ["admit", "chat", "signal"]},
            "room": {"id": "r-81", "settings": SETTINGS},
            "state": "in_room",
            "ice_servers": ICE,
            "resume": "t1.secret",
            "resumed": True,
            "peers": [C1],
            "recording": RECORDING,
            "lobby": [C2_WAITING],
            "denied": [DENIED],
        },
    )


def test_joined_waiting_for_a_client() -> None:
    built = messages.joined(
        ROOM, WAITING, permissions=["signal", "chat"], ice_servers=[], resume="r", resumed=False
    )
    same(
        built,
        {
            "type": "joined",
            "participant": {
                "id": "c2",
                "role": "client",
                "name": "Sam",
                "media": True,
                "permissions": ["chat", "signal"],
            },
            "room": {"id": "r-81", "settings": SETTINGS},
            "state": "waiting",
            "ice_servers": [],
            "resume": "r",
            "resumed": False,
            "waiting_since": 150.0,
            "therapist_present": True,
            "notice": "Five minutes.",
        },
    )


def test_waiting_room_messages() -> None:
    # A denial stored before links were kept is not listed.
    same(messages.lobby(ROOM), {"type": "lobby", "waiting": [C2_WAITING], "denied": [DENIED]})
    same(messages.admitted([THERAPIST, CLIENT]), {"type": "admitted", "peers": [T1, C1]})
    same(messages.denied("Not today."), {"type": "denied", "message": "Not today."})
    same(messages.lobby_notice("Soon."), {"type": "lobby_notice", "text": "Soon."})
    same(messages.waiting_status(False), {"type": "waiting_status", "therapist_present": False})
    same(messages.link_in_use("c1"), {"type": "link_in_use", "participant": "c1"})
    same(messages.link_in_use(None), {"type": "link_in_use", "participant": None})


# ---------- in the room ----------


def test_room_messages() -> None:
    same(messages.peer_joined(CLIENT), {"type": "peer_joined", "participant": C1})
    same(
        messages.peer_left("c1", "timeout"),
        {"type": "peer_left", "participant": "c1", "reason": "timeout"},
    )
    same(messages.peer_reconnecting("c1"), {"type": "peer_reconnecting", "participant": "c1"})
    same(messages.peer_resumed("c1"), {"type": "peer_resumed", "participant": "c1"})
    same(
        messages.signal("t1", {"kind": "state", "gen": 0}),
        {"type": "signal", "from": "t1", "data": {"kind": "state", "gen": 0}},
    )
    same(
        messages.chat("t1", "Hello", 300.5, "c-x"),
        {"type": "chat", "from": "t1", "text": "Hello", "at": 300.5, "id": "c-x"},
    )
    same(
        messages.chat_undelivered("c-x", "c1"),
        {"type": "chat_undelivered", "id": "c-x", "to": "c1"},
    )
    same(messages.ended("t1"), {"type": "ended", "by": "t1"})
    same(messages.ended(None), {"type": "ended", "by": None})
    same(messages.server_shutdown(), {"type": "server_shutdown"})
    same(messages.left(), {"type": "left"})


def test_errors() -> None:
    same(
        messages.error(RoomFull("Full.")),
        {"type": "error", "code": "room_full", "message": "Full."},
    )
    same(
        messages.replaced("Elsewhere."),
        {"type": "error", "code": "replaced", "message": "Elsewhere."},
    )


# ---------- recording ----------


def test_recording_messages() -> None:
    same(messages.recording_state(GATE), {"type": "recording_state", **RECORDING})
    same(
        messages.consent_request(ROOM, "Kept on the practice's server."),
        {
            "type": "consent_request",
            "request": "q-7f",
            "by": {"id": "t1", "name": "Dr Lee"},
            "records": ["audio", "video"],
            "where": "Kept on the practice's server.",
        },
    )
    same(
        messages.rec_answer("rec-1", "v=0"),
        {"type": "rec_answer", "recording": "rec-1", "sdp": "v=0"},
    )
    same(
        messages.recording_issue("c1", "recording_codec_unsupported"),
        {"type": "recording_issue", "participant": "c1", "code": "recording_codec_unsupported"},
    )


# ---------- against docs/protocol.md ----------


def outbound_types() -> dict[str, type]:
    """Each message type of `messages.Outbound`, by its "type" value."""
    found = {}
    for td in typing.get_args(messages.Outbound):
        (value,) = typing.get_args(typing.get_type_hints(td)["type"])
        found[value] = td
    return found


def test_every_builder_returns_one_outbound_message_and_all_are_covered() -> None:
    kinds = outbound_types()
    assert len(kinds) == len(typing.get_args(messages.Outbound)), "two share a type"
    returned = set()
    for name, fn in inspect.getmembers(messages, inspect.isfunction):
        if fn.__module__ != messages.__name__:
            continue
        hint = typing.get_type_hints(fn)["return"]
        if "type" in typing.get_type_hints(hint):
            assert hint in kinds.values(), f"{name} returns a message not in Outbound"
            returned.add(hint)
    assert returned == set(kinds.values())
    # And every "type" literal in the module's source is one of them.
    assert set(re.findall(r'"type": "(\w+)"', SOURCE.read_text())) == set(kinds)


def documented() -> tuple[set[str], set[str]]:
    """docs/protocol.md: the message types in table rows sent by the server, and every message
    type shown as a JSON object anywhere (`{"type": "x"`), in tables, code or text."""
    text = PROTOCOL.read_text()
    from_server, shown = set(), set(re.findall(r'\{\s*"type":\s*"(\w+)"', text))
    for line in text.splitlines():
        # Cells split at pipes that are not escaped (`"left"\|"timeout"` is one cell).
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) < 3 or not cells[0].startswith('`{"type":'):
            continue
        kind = re.match(r'`\{"type": ?"(\w+)"', cells[0])
        assert kind is not None
        if cells[1] == "server" or cells[1].startswith("server →"):
            from_server.add(kind[1])
    assert len(from_server) > 15, "the message tables were not found or not parsed"
    return from_server, shown


def test_every_message_built_is_documented_as_sent_by_the_server() -> None:
    from_server, shown = documented()
    inbound = set(protocol._PARSERS)
    # A server row in a table, or shown outside the tables and not a client's message
    # (`joined` and `error` in code blocks, `link_in_use` in text, `left` as `leave`'s answer).
    documented_outbound = from_server | (shown - inbound)
    missing = set(outbound_types()) - documented_outbound
    assert not missing, f"built but not documented in docs/protocol.md: {sorted(missing)}"
    # And the other way: every message the tables say the server sends is built here.
    assert from_server <= set(outbound_types())
