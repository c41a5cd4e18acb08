"""Recording control driven by committed room events: the consent ledger's entries, in
order, the word to every node that a recording was cut, and the manifest a start writes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from recordings.control import RECORDING_CUT, RecordingControl
from recordings.ledger import FileLedger, LedgerEntry, LedgerEvent
from recordings.manifest import Manifest, ManifestStatus
from recordings.storage import LEDGER_FILE, RecordingStorage, new_recording_id
from signaling.bus import RESUBSCRIBED
from signaling.core import gate as rules
from signaling.core.errors import ServiceUnavailable
from signaling.core.events import (
    Admission,
    Committed,
    ParticipantAdmitted,
    RecordingStarted,
    RecordingStopped,
    gate_events,
)
from signaling.core.gate import GateChange, Reason, Status
from signaling.core.model import (
    Participant,
    ParticipantState,
    RecordingMode,
    Role,
    RoomSettings,
    RoomState,
)
from signaling.recording_port import RecordingControl as RecordingPort

T0 = 1_700_000_000.0
ROOM = "r-1"
THERAPIST, CLIENT, NEWCOMER = "p-t", "p-c", "p-n"


def participant(pid: str, role: Role = Role.CLIENT) -> Participant:
    return Participant(
        id=pid,
        role=role,
        identity=pid,
        display_name=f"Name {pid}",
        state=ParticipantState.ADMITTED,
        link_id=f"l-{pid}",
        resume_hash="",
        joined_at=T0,
        node="n",
    )


def a_room(*clients: str) -> RoomState:
    """A consent room with its therapist and these clients admitted, nothing asked yet."""
    return RoomState(
        id=ROOM,
        settings=RoomSettings(max_clients=3, recording=RecordingMode.CONSENT),
        created_at=T0,
        origin="api",
        participants=(participant(THERAPIST, Role.THERAPIST), *map(participant, clients)),
    )


@dataclass
class Nodes:
    """The bus's `to_nodes` and the store's `get`, as recording control uses them: a cut is
    delivered to this node's own handler at once, as the real buses do."""

    rooms: dict[str, RoomState] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    control: RecordingControl | None = None
    store_away: bool = False

    async def to_nodes(self, message: Mapping[str, Any]) -> None:
        self.sent.append(dict(message))
        if self.control is not None:
            self.control.node_message(message)

    async def read_room(self, room_id: str) -> RoomState | None:
        if self.store_away:
            raise ServiceUnavailable()
        return self.rooms.get(room_id)


def make_control(root: Path, nodes: Nodes) -> RecordingControl:
    ledger = FileLedger(root / LEDGER_FILE)
    control = RecordingControl(
        RecordingStorage(root, ledger),
        ledger,
        to_nodes=nodes.to_nodes,
        read_room=nodes.read_room,
        resubscribed_kind=RESUBSCRIBED,
    )
    nodes.control = control
    return control


class Flow:
    """Moves a room's gate with the pure rules and hands recording control what the store
    would commit: the room it led to and the events `gate_events` derives."""

    def __init__(self, control: RecordingControl, nodes: Nodes, room: RoomState) -> None:
        self.control, self.nodes, self.room = control, nodes, room
        self.now = T0 + 10

    async def _commit(self, change: GateChange, **kw: Any) -> None:
        self.now += 1
        self.room = replace(self.room, recording=change.gate)
        self.nodes.rooms[self.room.id] = self.room
        events = gate_events(self.room, change, self.now, **kw)
        await self.control.committed(Committed(self.room, events))

    async def request(self) -> None:
        change = rules.request(
            self.room.recording,
            by=THERAPIST,
            present=tuple(p.id for p in self.room.admitted),
            request_id="q-1",
            now=self.now,
            new_recording=new_recording_id(self.now),
        )
        await self._commit(change, requested=True)

    async def answer(self, who: str, granted: bool) -> None:
        change = rules.answer(
            self.room.recording,
            participant=who,
            request_id="q-1",
            granted=granted,
            now=self.now,
            new_recording=new_recording_id(self.now),
        )
        await self._commit(change, answered=(who, granted))

    async def enter(self, who: str) -> None:
        self.room = replace(self.room, participants=(*self.room.participants, participant(who)))
        change = rules.participant_entered(self.room.recording, participant=who, now=self.now)
        assert change is not None
        await self._commit(change)

    async def stop(self) -> None:
        await self._commit(rules.stop(self.room.recording, by=THERAPIST, now=self.now))

    async def recording(self) -> str:
        """Asked, and everyone said yes: the id of the recording that began."""
        await self.request()
        for p in self.room.admitted:
            await self.answer(p.id, True)
        assert self.room.recording.status is Status.RECORDING
        assert self.room.recording.recording is not None
        return self.room.recording.recording


def ledger_rows(control: RecordingControl) -> list[tuple[Any, ...]]:
    return [
        (e.event, e.request, e.participant, e.granted, e.recording, e.reason)
        for e in control.ledger.entries()
    ]


def file_lines(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (root / LEDGER_FILE).read_text().splitlines()]


@pytest.fixture
def nodes() -> Nodes:
    return Nodes()


@pytest.fixture
def control(tmp_path: Path, nodes: Nodes) -> RecordingControl:
    return make_control(tmp_path, nodes)


def test_it_is_what_the_room_service_asks_for(control: RecordingControl) -> None:
    port: RecordingPort = control  # checked by mypy: the Protocol is met structurally
    assert port.available and port.rooms_recording == frozenset()


async def test_a_yes_from_everyone_logs_in_order_and_begins_the_recording(
    tmp_path: Path, control: RecordingControl, nodes: Nodes
) -> None:
    flow = Flow(control, nodes, a_room(CLIENT))
    recording = await flow.recording()
    assert ledger_rows(control) == [
        (LedgerEvent.REQUESTED, "q-1", THERAPIST, None, None, None),
        (LedgerEvent.ANSWERED, "q-1", THERAPIST, True, None, None),
        (LedgerEvent.ANSWERED, "q-1", CLIENT, True, None, None),
        (LedgerEvent.STARTED, "q-1", None, None, recording, None),
    ]
    assert [line["event"] for line in file_lines(tmp_path)] == [
        "requested", "answered", "answered", "started",
    ]  # fmt: skip
    assert all(line["room"] == ROOM for line in file_lines(tmp_path))
    assert nodes.sent == []  # nothing was cut
    assert control.writing == {recording: ROOM}
    assert control.rooms_recording == frozenset({ROOM})
    manifest = control.storage.read_manifest(recording)
    assert manifest.status is ManifestStatus.RECORDING
    assert (manifest.room, manifest.session_request) == (ROOM, "q-1")
    assert [p.id for p in manifest.participants] == [THERAPIST, CLIENT]
    assert manifest.started_at == flow.room.recording.started_at
    await control.close()


async def test_a_stop_is_told_to_every_node_then_logged(
    tmp_path: Path, control: RecordingControl, nodes: Nodes
) -> None:
    flow = Flow(control, nodes, a_room(CLIENT))
    recording = await flow.recording()
    await flow.stop()
    assert nodes.sent == [
        {
            "kind": RECORDING_CUT,
            "recording": recording,
            "reason": "stopped_by_therapist",
            "at": flow.now,
        }
    ]
    assert ledger_rows(control)[-1] == (
        LedgerEvent.STOPPED, "q-1", THERAPIST, None, recording, "stopped_by_therapist",
    )  # fmt: skip
    assert control.writing == {}  # this node's own handler cut it
    await control.close()
    manifest = control.storage.read_manifest(recording)
    assert manifest.status is ManifestStatus.COMPLETE
    assert (manifest.stopped_at, manifest.stop_reason) == (flow.now, "stopped_by_therapist")
    assert [e.event for e in manifest.ledger] == [
        "requested", "answered", "answered", "started", "stopped",
    ]  # fmt: skip
    assert file_lines(tmp_path)[-1]["reason"] == "stopped_by_therapist"


async def test_a_declined_request_logs_a_stop_with_no_recording_and_tells_no_node(
    tmp_path: Path, control: RecordingControl, nodes: Nodes
) -> None:
    flow = Flow(control, nodes, a_room(CLIENT))
    await flow.request()
    await flow.answer(THERAPIST, True)
    await flow.answer(CLIENT, False)
    assert ledger_rows(control) == [
        (LedgerEvent.REQUESTED, "q-1", THERAPIST, None, None, None),
        (LedgerEvent.ANSWERED, "q-1", THERAPIST, True, None, None),
        (LedgerEvent.ANSWERED, "q-1", CLIENT, False, None, None),
        (LedgerEvent.STOPPED, "q-1", CLIENT, None, None, "declined"),
    ]
    last = file_lines(tmp_path)[-1]
    assert (last["event"], last["recording"], last["reason"]) == ("stopped", None, "declined")
    assert nodes.sent == []
    assert control.writing == {} and control.storage.list() == []
    await control.close()


async def test_a_newcomer_cuts_the_recording_and_their_yes_starts_the_next(
    control: RecordingControl, nodes: Nodes
) -> None:
    flow = Flow(control, nodes, a_room(CLIENT))
    first = await flow.recording()
    await flow.enter(NEWCOMER)
    assert [m["recording"] for m in nodes.sent] == [first]
    assert nodes.sent[0]["reason"] == "participant_joined"
    await flow.answer(NEWCOMER, True)
    second = flow.room.recording.recording
    assert second is not None and second != first
    assert ledger_rows(control)[-3:] == [
        (LedgerEvent.STOPPED, "q-1", NEWCOMER, None, first, "participant_joined"),
        (LedgerEvent.ANSWERED, "q-1", NEWCOMER, True, None, None),
        (LedgerEvent.STARTED, "q-1", None, None, second, None),
    ]
    assert control.writing == {second: ROOM}
    await control.close()
    assert [p.id for p in control.storage.read_manifest(second).participants] == [
        THERAPIST, CLIENT, NEWCOMER,
    ]  # fmt: skip


async def test_a_start_whose_gate_already_moved_on_is_logged_but_begins_nothing(
    control: RecordingControl,
) -> None:
    recording = new_recording_id(T0)
    started = RecordingStarted(ROOM, T0, "q-1", recording)
    # Committed with a room whose gate is no longer on that recording.
    await control.committed(Committed(a_room(CLIENT), (started,)))
    assert ledger_rows(control) == [(LedgerEvent.STARTED, "q-1", None, None, recording, None)]
    assert control.writing == {} and control.storage.list() == []
    await control.close()


async def test_recovery_and_a_stop_write_their_entry_through_the_same_code(
    tmp_path: Path, control: RecordingControl, nodes: Nodes, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str | None] = []
    note = RecordingControl._note_stopped

    def spy(self: RecordingControl, **fields: Any) -> LedgerEntry:
        calls.append(fields["recording"])
        return note(self, **fields)

    monkeypatch.setattr(RecordingControl, "_note_stopped", spy)
    flow = Flow(control, nodes, a_room(CLIENT))
    stopped = await flow.recording()
    await flow.stop()
    left = new_recording_id(T0)  # what a killed node leaves: a manifest still recording
    control.storage.folder(left)
    control.storage.write_manifest(
        Manifest(
            id=left,
            room="r-2",
            session_request="q-2",
            room_opened_at=T0,
            status=ManifestStatus.RECORDING,
            participants=(),
            started_at=T0,
        )
    )
    assert await control.recover(quiet_seconds=0) == [left]
    assert calls == [stopped, left]
    by_stop, by_recovery = (e for e in control.ledger.entries() if e.event is LedgerEvent.STOPPED)
    assert set(by_stop.to_dict()) == set(by_recovery.to_dict())
    assert (by_recovery.room, by_recovery.request, by_recovery.recording) == ("r-2", "q-2", left)
    assert (by_recovery.participant, by_recovery.granted) == (None, None)
    assert by_recovery.reason == "interrupted"  # Reason.INTERRUPTED, as text
    manifest = control.storage.read_manifest(left)
    assert manifest.status is ManifestStatus.INTERRUPTED
    assert manifest.stop_reason == "interrupted"
    await control.close()


async def test_a_cut_from_another_node_stops_this_nodes_legs(
    control: RecordingControl, nodes: Nodes
) -> None:
    flow = Flow(control, nodes, a_room(CLIENT))
    recording = await flow.recording()
    control.node_message(
        {"kind": RECORDING_CUT, "recording": recording, "reason": "withdrawn", "at": T0 + 99}
    )
    assert control.writing == {}
    await control.close()
    manifest = control.storage.read_manifest(recording)
    assert (manifest.stop_reason, manifest.stopped_at) == ("withdrawn", T0 + 99)


async def test_only_the_recording_events_are_its_business(control: RecordingControl) -> None:
    room = a_room(CLIENT)
    admitted = ParticipantAdmitted(ROOM, T0, CLIENT, Role.CLIENT, Admission.BY_THERAPIST, THERAPIST)
    ended = RecordingStopped(ROOM, T0, "q-1", None, Reason.SESSION_ENDED, None)
    await control.committed(Committed(room, (admitted, ended)))
    assert ledger_rows(control) == [
        (LedgerEvent.STOPPED, "q-1", None, None, None, "session_ended"),
    ]
    await control.close()
