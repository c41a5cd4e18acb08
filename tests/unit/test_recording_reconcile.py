"""A node that missed word that a recording stopped (its bus subscription was made again)
checks what it is writing against the room's gate, and stops what has ended elsewhere."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from recordings.control import RecordingControl
from signaling.bus import RESUBSCRIBED
from signaling.core.gate import Reason, Status
from signaling.core.model import RoomState
from tests.polling import eventually
from tests.unit.test_recording_control import CLIENT, ROOM, Flow, Nodes, a_room, make_control


async def _recording(tmp_path: Path) -> tuple[RecordingControl, Nodes, str]:
    """A room whose gate opened: this node is writing its recording."""
    nodes = Nodes()
    control = make_control(tmp_path, nodes)
    recording_id = await Flow(control, nodes, a_room(CLIENT)).recording()
    assert control.writing == {recording_id: ROOM}
    return control, nodes, recording_id


def _stopped_elsewhere(nodes: Nodes) -> None:
    """Another node closed the gate; this one was not told."""
    room: RoomState = nodes.rooms[ROOM]
    gate = replace(room.recording, status=Status.STOPPED, reason=Reason.WITHDRAWN, at=5.0)
    nodes.rooms[ROOM] = replace(room, recording=gate)


async def test_a_recording_still_open_is_left_alone(tmp_path: Path) -> None:
    control, _, recording_id = await _recording(tmp_path)
    assert await control.reconcile() == []
    assert control.writing == {recording_id: ROOM}
    await control.close()


async def test_a_recording_stopped_elsewhere_is_stopped_here(tmp_path: Path) -> None:
    control, nodes, recording_id = await _recording(tmp_path)
    _stopped_elsewhere(nodes)
    assert await control.reconcile() == [recording_id]
    assert control.writing == {}
    await control.close()  # waits for the files to be finished
    manifest = control.storage.read_manifest(recording_id)
    assert manifest.status != "recording"
    assert (manifest.stop_reason, manifest.stopped_at) == ("withdrawn", 5.0)


async def test_a_room_that_is_gone_counts_as_ended(tmp_path: Path) -> None:
    control, nodes, recording_id = await _recording(tmp_path)
    del nodes.rooms[ROOM]
    assert await control.reconcile() == [recording_id]
    await control.close()
    assert control.storage.read_manifest(recording_id).stop_reason == "session_ended"


async def test_a_store_that_is_away_leaves_the_recording_for_the_next_check(
    tmp_path: Path,
) -> None:
    control, nodes, recording_id = await _recording(tmp_path)
    nodes.store_away = True
    assert await control.reconcile() == []
    assert control.writing == {recording_id: ROOM}
    await control.close()


async def test_word_of_a_resubscription_starts_the_check(tmp_path: Path) -> None:
    control, nodes, recording_id = await _recording(tmp_path)
    _stopped_elsewhere(nodes)
    control.node_message({"kind": RESUBSCRIBED})
    await eventually(lambda: not control.writing, what="the check's cut")
    await control.close()
    assert control.storage.read_manifest(recording_id).stop_reason == "withdrawn"
