"""A node that missed word that a recording stopped (its bus subscription was made again)
checks what it is writing against the room's gate, and stops what has ended elsewhere."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from recordings.gate import Reason, Status
from recordings.ledger import MemoryLedger
from recordings.service import RecordingService
from recordings.storage import RecordingStorage
from signaling.bus import RESUBSCRIBED
from signaling.memory_bus import MemoryMessageBus
from signaling.memory_store import MemoryRoomStore
from signaling.model import RecordingMode, Role, RoomSettings, RoomState
from signaling.rooms import RoomService, Session
from tests.support import make_keys, mint

CONSENT = RoomSettings(recording=RecordingMode.CONSENT)


async def _recording(tmp_path: Path) -> tuple[RoomService, str]:
    """A room whose gate opened: this node is writing its recording."""
    keys = make_keys()
    ledger = MemoryLedger()
    recordings = RecordingService(RecordingStorage(tmp_path, ledger), ledger)
    service = RoomService(
        MemoryRoomStore(), MemoryMessageBus("n"), keys, grace_seconds=5, recordings=recordings
    )
    sessions: list[Session] = []
    for role, name in ((Role.THERAPIST, "Dr Sam"), (Role.CLIENT, "Alex")):
        claims = keys.verify(mint(keys, "r", role, name, settings=CONSENT))
        sessions.append((await service.join(claims, None)).session)
    therapist, client = sessions
    await service.admit(therapist, client.participant_id)
    await service.request_recording(therapist)
    room = await service.store.get("r")
    assert room is not None and room.recording.request is not None
    for s in sessions:
        await service.consent(s, room.recording.request, True)
    [recording_id] = recordings.writing
    return service, recording_id


async def _stopped_elsewhere(service: RoomService) -> None:
    """Another node closed the gate; this one was not told."""

    def stop(room: RoomState | None) -> tuple[RoomState | None, None]:
        assert room is not None
        gate = replace(room.recording, status=Status.STOPPED, reason=Reason.WITHDRAWN, at=5.0)
        return replace(room, recording=gate), None

    await service.store.update("r", stop)


async def test_a_recording_still_open_is_left_alone(tmp_path: Path) -> None:
    service, recording_id = await _recording(tmp_path)
    assert await service.reconcile_recordings() == []
    assert service.recordings is not None and service.recordings.writing == {recording_id: "r"}
    await service.close()


async def test_a_recording_stopped_elsewhere_is_stopped_here(tmp_path: Path) -> None:
    service, recording_id = await _recording(tmp_path)
    await _stopped_elsewhere(service)
    assert await service.reconcile_recordings() == [recording_id]
    recordings = service.recordings
    assert recordings is not None and recordings.writing == {}
    await recordings.close()  # waits for the files to be finished
    manifest = recordings.storage.read_manifest(recording_id)
    assert manifest.status != "recording"
    assert manifest.stop_reason == "withdrawn"


async def test_word_of_a_resubscription_starts_the_check(tmp_path: Path) -> None:
    service, recording_id = await _recording(tmp_path)
    await _stopped_elsewhere(service)
    service.node_message({"kind": RESUBSCRIBED})
    recordings = service.recordings
    assert recordings is not None
    async with asyncio.timeout(5):
        while recordings.writing:
            await asyncio.sleep(0.01)
    await service.close()
    assert recordings.storage.read_manifest(recording_id).stop_reason == "withdrawn"
