"""Recordings on disk: ids and names that cannot leave the folder, private modes,
listing, deletion and retention."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recordings.manifest import Manifest, ManifestStatus
from recordings.storage import (
    RecordingStorage,
    new_recording_id,
    valid_file_name,
    valid_recording_id,
)
from signaling.core.errors import Conflict, NotFound
from tests.recording_fixtures import T0, make_webm, storage_at, store_recording

DAY = 86400.0
BAD_IDS = [
    "../x", "rec-../../etc", "rec-x", "", "rec-20261126-093000-ab12c", "rec-20261126-093000-AB12CD",
    "rec-20261126-093000-ab12cd\n", "rec-20261126-093000-ab12cd/..", "/etc/passwd",
]  # fmt: skip
BAD_NAMES = [
    "../manifest.json", "a/b.webm", "manifest.json", "p-1.webm\n", ".webm", "p-1.mp4",
    "..", "p-1.webm/..", "x" * 65 + ".webm",
]  # fmt: skip


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def webm(tmp_path: Path) -> Path:
    return make_webm(tmp_path / "source.webm")


@pytest.fixture
def storage(tmp_path: Path) -> RecordingStorage:
    return storage_at(tmp_path / "recordings")


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Modes must not depend on the process's umask."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_new_ids_are_utc_times_and_random() -> None:
    ids = {new_recording_id(T0) for _ in range(50)}
    assert len(ids) == 50
    stamp = datetime.fromtimestamp(T0, UTC).strftime("%Y%m%d-%H%M%S")
    for recording_id in ids:
        assert re.fullmatch(rf"rec-{stamp}-[a-z0-9]{{6}}", recording_id)
        assert valid_recording_id(recording_id)


def test_id_and_name_patterns() -> None:
    assert valid_recording_id("rec-20261126-093000-ab12cd")
    assert not any(valid_recording_id(i) for i in BAD_IDS)
    assert valid_file_name("p-2.webm") and valid_file_name("p_2.mkv")
    assert not any(valid_file_name(n) for n in BAD_NAMES)


@pytest.mark.usefixtures("open_umask")
def test_everything_written_is_private(storage: RecordingStorage, webm: Path) -> None:
    m = store_recording(storage, "r-1", webm=webm)
    folder = storage.root / m.id
    assert _mode(storage.root) == 0o700
    assert _mode(folder) == 0o700 and _mode(folder / "parts") == 0o700
    assert _mode(folder / "manifest.json") == 0o600
    assert _mode(storage.root / "ledger.jsonl") == 0o600
    assert storage.parts_folder(m.id) == folder / "parts"
    assert not (folder / "manifest.json.tmp").exists()


def test_reading_does_not_create_anything(tmp_path: Path) -> None:
    storage = storage_at(tmp_path / "nothing-yet")
    assert storage.list() == [] and storage.unfinished() == []
    with pytest.raises(NotFound):
        storage.read_manifest("rec-20261126-093000-ab12cd")
    assert not (tmp_path / "nothing-yet").exists()


def test_bad_ids_and_names_are_not_found(storage: RecordingStorage, webm: Path) -> None:
    m = store_recording(storage, "r-1", webm=webm)
    (storage.root.parent / "secret.webm").write_text("outside")
    for bad in BAD_IDS:
        with pytest.raises(NotFound):
            storage.read_manifest(bad)
        with pytest.raises(NotFound):
            storage.folder(bad)
        with pytest.raises(NotFound):
            storage.file_path(bad, "p-1.webm")
        with pytest.raises(NotFound):
            storage.delete(bad, at=T0, by=None, reason="x")
    for name in BAD_NAMES:
        with pytest.raises(NotFound):
            storage.file_path(m.id, name)
    with pytest.raises(NotFound):
        storage.read_manifest("rec-20261126-093000-zzzzzz")  # the right shape, unknown
    assert storage.file_path(m.id, "p-1.webm") == (storage.root / m.id / "p-1.webm").resolve()


def test_a_file_must_be_listed_there_and_inside(storage: RecordingStorage, webm: Path) -> None:
    m = store_recording(storage, "r-1", webm=webm)
    folder = storage.root / m.id
    (folder / "extra.webm").write_bytes(b"not listed")
    with pytest.raises(NotFound):
        storage.file_path(m.id, "extra.webm")
    (folder / "p-2.webm").unlink()
    with pytest.raises(NotFound):
        storage.file_path(m.id, "p-2.webm")
    outside = storage.root.parent / "elsewhere.webm"
    outside.write_bytes(b"outside")
    (folder / "p-2.webm").symlink_to(outside)
    with pytest.raises(NotFound):
        storage.file_path(m.id, "p-2.webm")


def test_list_is_newest_first_and_by_room(storage: RecordingStorage, webm: Path) -> None:
    old = store_recording(storage, "r-1", webm=webm, started_at=T0)
    new = store_recording(storage, "r-1", webm=webm, started_at=T0 + 3600)
    other = store_recording(storage, "r-2", webm=webm, started_at=T0 + 60)
    storage.folder(new_recording_id(T0 + 7200))  # made, manifest not yet written
    damaged = storage.folder(new_recording_id(T0 + 7300))
    (damaged / "manifest.json").write_text("{")
    assert [m.id for m in storage.list()] == [new.id, other.id, old.id]
    assert [m.id for m in storage.list("r-1")] == [new.id, old.id]
    assert storage.list("r-3") == []
    assert storage.read_manifest(new.id) == new


def test_unfinished_are_those_still_recording(storage: RecordingStorage, webm: Path) -> None:
    done = store_recording(storage, "r-1", webm=webm)
    left = replace(
        done, id=new_recording_id(T0 + 1), status=ManifestStatus.RECORDING, files=(), ledger=()
    )
    storage.write_manifest(left)
    assert [m.id for m in storage.unfinished()] == [left.id]


def test_delete_removes_the_folder_and_says_so_in_the_ledger(
    storage: RecordingStorage, webm: Path
) -> None:
    m = store_recording(storage, "r-1", webm=webm)
    storage.delete(m.id, at=T0 + 100, by=None, reason="deleted_by_api")
    assert not (storage.root / m.id).exists()
    last = storage.ledger.entries()[-1]
    assert (last.event, last.room, last.recording, last.participant, last.reason, last.at) == (
        "deleted", "r-1", m.id, None, "deleted_by_api", T0 + 100,
    )  # fmt: skip
    with pytest.raises(NotFound):
        storage.read_manifest(m.id)
    with pytest.raises(NotFound):
        storage.delete(m.id, at=T0, by=None, reason="again")


def test_a_recording_being_made_is_not_deleted(storage: RecordingStorage, webm: Path) -> None:
    m = store_recording(storage, "r-1", webm=webm)
    storage.write_manifest(replace(m, status=ManifestStatus.RECORDING))
    with pytest.raises(Conflict):
        storage.delete(m.id, at=T0, by=None, reason="deleted_by_api")
    assert (storage.root / m.id / "manifest.json").exists()


def test_sweep_deletes_what_is_past_retention(storage: RecordingStorage, webm: Path) -> None:
    now = T0 + 40 * DAY
    old = store_recording(storage, "r-1", webm=webm, started_at=T0)
    recent = store_recording(storage, "r-1", webm=webm, started_at=now - 2 * DAY)
    never_stopped: Manifest = replace(
        store_recording(storage, "r-2", webm=webm, started_at=T0 + 1),
        stopped_at=None, status=ManifestStatus.INTERRUPTED,
    )  # fmt: skip
    storage.write_manifest(never_stopped)
    in_progress = replace(
        store_recording(storage, "r-2", webm=webm, started_at=T0 + 2),
        status=ManifestStatus.RECORDING,
    )
    storage.write_manifest(in_progress)
    assert storage.sweep(now=now, older_than_days=0) == []
    assert sorted(storage.sweep(now=now, older_than_days=30)) == sorted([old.id, never_stopped.id])
    assert {m.id for m in storage.list()} == {recent.id, in_progress.id}
    deletions = [e for e in storage.ledger.entries() if e.event == "deleted"]
    assert {e.recording for e in deletions} == {old.id, never_stopped.id}
    assert {e.reason for e in deletions} == {"retention"}
    assert storage.sweep(now=now, older_than_days=30) == []
