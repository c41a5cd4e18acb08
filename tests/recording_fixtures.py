"""Test helpers for recordings: a small real WebM, and a finished recording on disk with
the ledger entries a consented session leaves."""

from __future__ import annotations

import fractions
from dataclasses import replace
from pathlib import Path

import av

from recordings.ledger import FileLedger, LedgerEvent
from recordings.manifest import Manifest, ManifestStatus, ParticipantInfo, describe_file
from recordings.storage import LEDGER_FILE, RecordingStorage, new_recording_id

T0 = 1764149400.0


def make_webm(path: Path, seconds: float = 1.0) -> Path:
    """Encodes `seconds` of VP8 video (64x48, 10 fps) and Opus audio into `path`."""
    with av.open(str(path), "w", format="webm") as out:
        video = out.add_stream("libvpx", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("libopus", rate=48000, layout="mono")
        frames = int(seconds * 10)
        for i in range(frames):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([(i * 20) % 255]) * plane.buffer_size)
            frame.pts = i
            frame.time_base = fractions.Fraction(1, 10)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = 960
        for i in range(int(seconds * 48000 / samples)):
            sound = av.AudioFrame(format="s16", layout="mono", samples=samples)
            sound.planes[0].update(bytes(sound.planes[0].buffer_size))
            sound.sample_rate = 48000
            sound.pts = i * samples
            sound.time_base = fractions.Fraction(1, 48000)
            out.mux(audio.encode(sound))
        out.mux(audio.encode(None))
    return path


def storage_at(root: Path) -> RecordingStorage:
    return RecordingStorage(root, FileLedger(root / LEDGER_FILE))


def store_recording(
    storage: RecordingStorage,
    room: str,
    *,
    webm: Path,
    started_at: float = T0,
    participants: tuple[str, ...] = ("p-1", "p-2"),
) -> Manifest:
    """A complete recording, as the service leaves it: requested, everyone said yes,
    started, stopped; one file per participant (copies of `webm`); the manifest."""
    ledger = storage.ledger
    request = f"q-{started_at:.0f}"[-8:]
    recording_id = new_recording_id(started_at)
    entries = [ledger.append(LedgerEvent.REQUESTED, at=started_at - 5, room=room, request=request,
                             participant=participants[0])]  # fmt: skip
    for i, pid in enumerate(participants):
        entries.append(
            ledger.append(
                LedgerEvent.ANSWERED,
                at=started_at - 4 + i,
                room=room,
                request=request,
                participant=pid,
                granted=True,
            )
        )
    entries.append(
        ledger.append(
            LedgerEvent.STARTED, at=started_at, room=room, request=request, recording=recording_id
        )
    )
    folder = storage.folder(recording_id)
    manifest = Manifest(
        id=recording_id,
        room=room,
        session_request=request,
        room_opened_at=started_at - 600,
        status=ManifestStatus.RECORDING,
        participants=tuple(
            ParticipantInfo(pid, "therapist" if i == 0 else "client", f"Person {i}")
            for i, pid in enumerate(participants)
        ),
        started_at=started_at,
    )
    storage.write_manifest(manifest)
    files = []
    for pid in participants:
        target = folder / f"{pid}.webm"
        target.write_bytes(webm.read_bytes())
        target.chmod(0o600)
        files.append(describe_file(target, pid))
    entries.append(
        ledger.append(
            LedgerEvent.STOPPED,
            at=started_at + 60,
            room=room,
            request=request,
            recording=recording_id,
            participant=participants[0],
            reason="stopped_by_therapist",
        )
    )
    manifest = replace(
        manifest,
        status=ManifestStatus.COMPLETE,
        stopped_at=started_at + 60,
        stop_reason="stopped_by_therapist",
        files=tuple(files),
        ledger=tuple(entries),
    )
    storage.write_manifest(manifest)
    return manifest
