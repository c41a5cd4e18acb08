"""The manifest's JSON shape, and how a finished file is described."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import av
import pytest

from recordings.ledger import LedgerEvent, MemoryLedger
from recordings.manifest import (
    FileInfo,
    Manifest,
    ManifestStatus,
    ParticipantInfo,
    describe_file,
)
from tests.recording_fixtures import make_webm


def _manifest() -> Manifest:
    ledger = MemoryLedger()
    entries = (
        ledger.append(
            LedgerEvent.REQUESTED, at=10.0, room="r-81", request="q-7f", participant="p-1"
        ),
        ledger.append(
            LedgerEvent.ANSWERED, at=11.0, room="r-81", request="q-7f", participant="p-1",
            granted=True,
        ),
    )  # fmt: skip
    return Manifest(
        id="rec-20261126-093000-ab12cd",
        room="r-81",
        session_request="q-7f",
        room_opened_at=1764148800.0,
        status=ManifestStatus.COMPLETE,
        participants=(ParticipantInfo("p-1", "therapist", "Dr Lee"),),
        started_at=1764149400.1,
        stopped_at=1764149460.3,
        stop_reason="stopped_by_therapist",
        files=(FileInfo("p-1.webm", "p-1", 123456, "ab" * 32, 60.1, ("vp8", "opus")),),
        ledger=entries,
    )


def test_manifest_round_trips_in_the_documented_shape() -> None:
    m = _manifest()
    data = json.loads(json.dumps(m.to_dict()))
    assert Manifest.from_dict(data) == m
    assert list(data) == [
        "id", "room", "session", "status", "participants", "started_at", "stopped_at",
        "stop_reason", "files", "ledger",
    ]  # fmt: skip
    assert data["session"] == {"request": "q-7f", "room_opened_at": 1764148800.0}
    assert data["participants"] == [{"id": "p-1", "role": "therapist", "name": "Dr Lee"}]
    assert data["files"][0] == {
        "name": "p-1.webm", "participant": "p-1", "bytes": 123456, "sha256": "ab" * 32,
        "duration": 60.1, "codecs": ["vp8", "opus"],
    }  # fmt: skip
    assert data["ledger"][1]["granted"] is True
    summary = m.summary()
    assert "ledger" not in summary and summary["id"] == m.id


def test_a_recording_in_progress_round_trips() -> None:
    m = Manifest(
        id="rec-20261126-093000-ab12cd", room="r", session_request="q", room_opened_at=1.0,
        status=ManifestStatus.RECORDING, participants=(), started_at=2.0,
    )  # fmt: skip
    assert Manifest.from_dict(m.to_dict()) == m
    assert m.to_dict()["stopped_at"] is None


def test_what_is_not_a_manifest_is_refused() -> None:
    good = _manifest().to_dict()
    for broken in (
        {**good, "status": "lost"},
        {k: v for k, v in good.items() if k != "session"},
        {**good, "files": [{"name": "x.webm"}]},
        {**good, "started_at": "yesterday"},
        {**good, "ledger": [{"seq": 1}]},
        {**good, "participants": "p-1"},
    ):
        with pytest.raises(ValueError):
            Manifest.from_dict(broken)


def test_describe_file_reads_codecs_duration_size_and_hash(tmp_path: Path) -> None:
    path = make_webm(tmp_path / "p-2.webm")
    info = describe_file(path, "p-2")
    assert info.name == "p-2.webm" and info.participant == "p-2"
    assert info.bytes == path.stat().st_size
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.codecs == ("vp8", "opus")
    assert 0.9 <= info.duration <= 1.1


def test_describe_file_without_a_duration_in_its_header(tmp_path: Path) -> None:
    source = make_webm(tmp_path / "source.webm")
    live = tmp_path / "live.webm"
    with (
        av.open(str(source)) as src,
        av.open(str(live), "w", format="webm", container_options={"live": "1"}) as out,
    ):
        stream = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.pts is not None:
                packet.stream = stream
                out.mux(packet)
    with av.open(str(live)) as check:
        assert check.duration is None  # so the packets are read for it
    info = describe_file(live, "p-1")
    assert info.codecs == ("opus",)
    assert 0.9 <= info.duration <= 1.1


def test_describe_file_of_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "p-3.webm"
    path.write_bytes(b"not a media file" * 10)
    info = describe_file(path, "p-3")
    assert (info.duration, info.codecs, info.bytes) == (0.0, (), 160)
