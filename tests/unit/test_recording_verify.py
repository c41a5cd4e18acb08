"""`verify`: a clean recording passes; a hand-edited ledger or a changed file does not."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from recordings.manifest import Manifest
from recordings.storage import RecordingStorage
from recordings.verify import verify
from signaling.core.errors import NotFound
from tests.recording_fixtures import T0, make_webm, storage_at, store_recording


@pytest.fixture
def storage(tmp_path: Path) -> RecordingStorage:
    return storage_at(tmp_path / "recordings")


@pytest.fixture
def recording(storage: RecordingStorage, tmp_path: Path) -> Manifest:
    return store_recording(storage, "r-1", webm=make_webm(tmp_path / "source.webm"))


def _failures(checks: list[tuple[bool, str]]) -> list[str]:
    return [what for ok, what in checks if not ok]


def test_a_clean_recording_passes(storage: RecordingStorage, recording: Manifest) -> None:
    checks = verify(storage.root, recording.id)
    assert _failures(checks) == []
    text = "\n".join(what for _, what in checks)
    assert "ledger: 5 entries" in text
    assert "the manifest's 5 entries are in the ledger, unchanged" in text
    assert "p-1 said yes" in text and "p-2 said yes" in text
    assert "p-1.webm" in text and "p-2.webm" in text


def test_a_hand_edited_ledger_line_fails(storage: RecordingStorage, recording: Manifest) -> None:
    path = storage.root / "ledger.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace('"granted": true', '"granted": false')
    path.write_text("\n".join(lines) + "\n")
    failures = _failures(verify(storage.root, recording.id))
    assert "ledger: entry 3: hash does not match its contents (edited?)" in failures
    assert any("manifest's entry 3 (answered) differs from the ledger's" in f for f in failures)


def test_a_changed_byte_in_a_file_fails(storage: RecordingStorage, recording: Manifest) -> None:
    path = storage.root / recording.id / "p-2.webm"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _failures(verify(storage.root, recording.id)) == [
        "p-2.webm: SHA-256 differs from the manifest's (changed?)"
    ]


def test_a_missing_or_resized_file_fails(storage: RecordingStorage, recording: Manifest) -> None:
    folder = storage.root / recording.id
    (folder / "p-1.webm").unlink()
    with (folder / "p-2.webm").open("ab") as f:
        f.write(b"more")
    failures = _failures(verify(storage.root, recording.id))
    assert failures[0] == "p-1.webm: missing"
    assert failures[1].startswith("p-2.webm: ") and "the manifest says" in failures[1]


def test_consent_edited_in_the_manifest_fails(
    storage: RecordingStorage, recording: Manifest
) -> None:
    path = storage.root / recording.id / "manifest.json"
    data = json.loads(path.read_text())
    data["ledger"][2]["granted"] = False
    path.write_text(json.dumps(data))
    failures = _failures(verify(storage.root, recording.id))
    assert "manifest's entry 3 (answered): hash does not match it" in failures
    assert "consent: no yes from p-2 before the start" in failures


def test_a_recording_without_everyones_yes_fails(
    storage: RecordingStorage, recording: Manifest
) -> None:
    storage.write_manifest(
        replace(recording, ledger=tuple(e for e in recording.ledger if e.seq != 3))
    )
    assert _failures(verify(storage.root, recording.id)) == [
        "consent: no yes from p-2 before the start"
    ]


def test_a_deleted_recording_says_when(storage: RecordingStorage, recording: Manifest) -> None:
    storage.delete(recording.id, at=T0 + 3600, by=None, reason="deleted_by_api")
    checks = verify(storage.root, recording.id)
    assert _failures(checks) == []
    assert any("deleted at" in what and "deleted_by_api" in what for _, what in checks)


def test_a_folder_removed_behind_the_ledgers_back_fails(
    storage: RecordingStorage, recording: Manifest
) -> None:
    shutil.rmtree(storage.root / recording.id)
    assert _failures(verify(storage.root, recording.id)) == [
        f"{recording.id}: its folder is gone, but the ledger records no deletion"
    ]


def test_unknown_ids(storage: RecordingStorage, recording: Manifest) -> None:
    for unknown in ("rec-20261126-093000-zzzzzz", "../x"):
        with pytest.raises(NotFound):
            verify(storage.root, unknown)
