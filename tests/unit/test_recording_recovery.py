"""Which unfinished recordings a starting (or housekeeping) node closes, and which it
leaves to the node still writing them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from recordings.ledger import MemoryLedger
from recordings.manifest import Manifest, ParticipantInfo
from recordings.service import RecordingService
from recordings.storage import RecordingStorage, new_recording_id
from tests.unit.test_recorder import _feed, _opus, _vp8


@pytest.fixture
def service(tmp_path: Path) -> RecordingService:
    ledger = MemoryLedger()
    return RecordingService(RecordingStorage(tmp_path, ledger), ledger)


def _unfinished(service: RecordingService, *, written_ago: float) -> str:
    from recordings.recorder import ParticipantRecorder

    recording = new_recording_id(time.time())
    service.storage.folder(recording)
    service.storage.write_manifest(
        Manifest(
            id=recording,
            room="r1",
            session_request="q1",
            room_opened_at=1.0,
            status="recording",
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


async def _never_live(manifest: Manifest) -> bool:
    return False


async def _always_live(manifest: Manifest) -> bool:
    return True


async def test_a_recording_still_live_somewhere_is_left_alone(service: RecordingService) -> None:
    recording = _unfinished(service, written_ago=60)
    assert await service.recover(_always_live) == []
    assert service.storage.read_manifest(recording).status == "recording"


async def test_parts_written_just_now_are_left_alone(service: RecordingService) -> None:
    recording = _unfinished(service, written_ago=1)
    assert await service.recover(_never_live, quiet_seconds=10) == []
    assert service.storage.read_manifest(recording).status == "recording"


async def test_an_abandoned_recording_is_closed_as_interrupted(service: RecordingService) -> None:
    recording = _unfinished(service, written_ago=60)
    assert await service.recover(_never_live, quiet_seconds=10) == [recording]
    manifest = service.storage.read_manifest(recording)
    assert manifest.status == "interrupted" and manifest.stop_reason == "interrupted"
    assert [f.participant for f in manifest.files] == ["p1"]
    assert sorted(manifest.files[0].codecs) == ["opus", "vp8"]
    assert [(e.event, e.reason) for e in service.ledger.entries()] == [("stopped", "interrupted")]
    assert not service.storage.parts_folder(recording).exists() or not any(
        service.storage.parts_folder(recording).iterdir()
    )
