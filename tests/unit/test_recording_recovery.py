"""Which unfinished recordings a starting (or housekeeping) node closes, and which it
leaves to the node still writing them."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from recordings.control import RecordingControl
from recordings.ledger import LedgerEvent
from recordings.manifest import Manifest, ManifestStatus, ParticipantInfo
from recordings.storage import new_recording_id
from signaling.core.gate import Gate, Status
from tests.unit.test_recorder import _feed, _opus, _vp8
from tests.unit.test_recording_control import Nodes, a_room, make_control


@pytest.fixture
def nodes() -> Nodes:
    return Nodes()


@pytest.fixture
def service(tmp_path: Path, nodes: Nodes) -> RecordingControl:
    return make_control(tmp_path, nodes)


def _unfinished(service: RecordingControl, *, written_ago: float) -> str:
    from recordings.recorder import ParticipantRecorder

    recording = new_recording_id(time.time())
    service.storage.folder(recording)
    service.storage.write_manifest(
        Manifest(
            id=recording,
            room="r1",
            session_request="q1",
            room_opened_at=1.0,
            status=ManifestStatus.RECORDING,
            participants=(ParticipantInfo("p1", "client", "Alex"),),
            started_at=time.time() - 60,
        )
    )
    parts = service.storage.parts_folder(recording)
    recorder = ParticipantRecorder(parts, "p1", zero=100.0, request_keyframe=lambda ssrc: None)
    _feed(recorder, _vp8(1), _opus(1), start=100.0)
    recorder.stop()  # what a killed node leaves: parts, no file, a manifest still recording
    for part in parts.iterdir():
        past = time.time() - written_ago
        os.utime(part, (past, past))
    return recording


def _live_in_room(nodes: Nodes, recording: str) -> None:
    """Room r1's gate is still open on the recording: some node is writing it."""
    gate = Gate(status=Status.RECORDING, request="q1", recording=recording, started_at=1.0)
    nodes.rooms["r1"] = replace(a_room(), id="r1", recording=gate)


async def test_a_recording_still_live_somewhere_is_left_alone(
    service: RecordingControl, nodes: Nodes
) -> None:
    recording = _unfinished(service, written_ago=60)
    _live_in_room(nodes, recording)
    assert await service.is_live(service.storage.read_manifest(recording))
    assert await service.recover() == []
    assert service.storage.read_manifest(recording).status is ManifestStatus.RECORDING


async def test_parts_written_just_now_are_left_alone(service: RecordingControl) -> None:
    recording = _unfinished(service, written_ago=1)
    assert await service.recover(quiet_seconds=10) == []
    assert service.storage.read_manifest(recording).status is ManifestStatus.RECORDING


async def test_an_abandoned_recording_is_closed_as_interrupted(
    service: RecordingControl, nodes: Nodes
) -> None:
    recording = _unfinished(service, written_ago=60)
    # Its room moved on to another recording (or is gone): nobody writes this one.
    _live_in_room(nodes, new_recording_id(time.time()))
    assert not await service.is_live(service.storage.read_manifest(recording))
    assert await service.recover(quiet_seconds=10) == [recording]
    manifest = service.storage.read_manifest(recording)
    assert manifest.status is ManifestStatus.INTERRUPTED
    assert manifest.stop_reason == "interrupted"
    assert [f.participant for f in manifest.files] == ["p1"]
    assert sorted(manifest.files[0].codecs) == ["opus", "vp8"]
    assert [(e.event, e.reason) for e in service.ledger.entries()] == [
        (LedgerEvent.STOPPED, "interrupted")
    ]
    assert not service.storage.parts_folder(recording).exists() or not any(
        service.storage.parts_folder(recording).iterdir()
    )
