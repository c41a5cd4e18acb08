"""Where recordings live on disk (docs/recordings.md, "On disk").

```
<root>/                      0700
  ledger.jsonl               0600
  rec-YYYYMMDD-HHMMSS-xxxxxx/   0700
    manifest.json            0600
    <participant>.webm       0600
    parts/                   0700
```

Every id and file name from outside is checked against a strict pattern before it becomes
part of a path, and anything that does not match, or is not there, is `NotFound`. The
methods do blocking file I/O: the REST handlers call them through `asyncio.to_thread`.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import re
import shutil
from pathlib import Path

from recordings.ledger import ConsentLedger, LedgerEvent
from recordings.manifest import Manifest, ManifestStatus
from signaling.core.errors import Conflict, NotFound, SessionroomError
from signaling.core.gate import new_recording_id as new_recording_id

log = logging.getLogger("sessionroom.recordings")

# The ids signaling.core.gate.new_recording_id makes (re-exported here with the pattern).
RECORDING_ID_RE = re.compile(r"^rec-[0-9]{8}-[0-9]{6}-[a-z0-9]{6}$")
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(webm|mkv)$")
LEDGER_FILE = "ledger.jsonl"
MANIFEST = "manifest.json"
PARTS = "parts"
_DAY = 86400.0


def valid_recording_id(recording_id: str) -> bool:
    # fullmatch: `$` alone would let a trailing newline through.
    return isinstance(recording_id, str) and RECORDING_ID_RE.fullmatch(recording_id) is not None


def valid_file_name(name: str) -> bool:
    return isinstance(name, str) and FILE_NAME_RE.fullmatch(name) is not None


class DamagedManifest(SessionroomError):
    """A manifest that is there but cannot be read: a fault, not a refusal."""

    default_message = "This recording's manifest is damaged."


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


class RecordingStorage:
    def __init__(self, root: Path, ledger: ConsentLedger) -> None:
        self.root = root
        self.ledger = ledger

    def _ensure_root(self) -> Path:
        if not self.root.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        return self.root

    def _checked(self, recording_id: str) -> Path:
        if not valid_recording_id(recording_id):
            raise NotFound("No such recording.")
        return self.root / recording_id

    def folder(self, recording_id: str) -> Path:
        """The recording's folder, made (0700, with `parts/`) if it is not there yet."""
        path = self._checked(recording_id)
        self._ensure_root()
        _private_dir(path)
        _private_dir(path / PARTS)
        return path

    def parts_folder(self, recording_id: str) -> Path:
        """Where the single-track part files go while recording."""
        return self.folder(recording_id) / PARTS

    def write_manifest(self, manifest: Manifest) -> None:
        """Writes manifest.json (0600) whole or not at all: a temporary file, fsynced, then
        renamed over the old one."""
        folder = self.folder(manifest.id)
        tmp = folder / (MANIFEST + ".tmp")
        data = (json.dumps(manifest.to_dict(), indent=2) + "\n").encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, folder / MANIFEST)
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def read_manifest(self, recording_id: str) -> Manifest:
        path = self._checked(recording_id) / MANIFEST
        try:
            text = path.read_text()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("No such recording.") from None
        try:
            manifest = Manifest.from_dict(json.loads(text))
        except ValueError:
            raise DamagedManifest() from None
        if manifest.id != recording_id:
            raise DamagedManifest("This recording's manifest names another recording.")
        return manifest

    def list(self, room: str | None = None) -> builtins.list[Manifest]:
        """Every readable manifest (of one room), newest first."""
        try:
            names = [p.name for p in self.root.iterdir() if valid_recording_id(p.name)]
        except FileNotFoundError:
            return []
        found: builtins.list[Manifest] = []
        for name in names:
            try:
                manifest = self.read_manifest(name)
            except NotFound:
                continue  # made but not yet written, or just deleted
            except DamagedManifest:
                log.warning("a recording's manifest is damaged", extra={"recording": name})
                continue
            if room is None or manifest.room == room:
                found.append(manifest)
        found.sort(key=lambda m: (m.started_at, m.id), reverse=True)
        return found

    def unfinished(self) -> builtins.list[Manifest]:
        """Recordings still marked `recording`: at start, those a stopped server left."""
        return [m for m in self.list() if m.status is ManifestStatus.RECORDING]

    def file_path(self, recording_id: str, name: str) -> Path:
        """The path of one of the recording's finished files, if it is listed in the
        manifest and there; NotFound otherwise."""
        folder = self._checked(recording_id)
        if not valid_file_name(name):
            raise NotFound("No such file.")
        manifest = self.read_manifest(recording_id)
        if name not in {f.name for f in manifest.files}:
            raise NotFound("No such file.")
        try:
            path = (folder / name).resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound("No such file.") from None
        if path.parent != folder.resolve() or not path.is_file():
            raise NotFound("No such file.")
        return path

    def delete(self, recording_id: str, *, at: float, by: str | None, reason: str) -> None:
        """Removes the recording's folder, then records the deletion in the ledger.

        A recording still being written is refused (`Conflict`): stop it first.
        """
        manifest = self.read_manifest(recording_id)
        if manifest.status is ManifestStatus.RECORDING:
            raise Conflict("This recording is still being made; stop it first.")
        folder = self._checked(recording_id)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            raise NotFound("No such recording.") from None
        self.ledger.append(
            LedgerEvent.DELETED,
            at=at,
            room=manifest.room,
            request=manifest.session_request,
            recording=recording_id,
            participant=by,
            reason=reason,
        )

    def sweep(self, *, now: float, older_than_days: float) -> builtins.list[str]:
        """Deletes the recordings that stopped (or, if never stopped, started) more than
        `older_than_days` ago, with reason `retention`; 0 days deletes nothing. Returns
        the ids deleted."""
        if older_than_days <= 0:
            return []
        cutoff = now - older_than_days * _DAY
        deleted: builtins.list[str] = []
        for manifest in self.list():
            if manifest.status is ManifestStatus.RECORDING:
                continue
            ended = manifest.stopped_at if manifest.stopped_at is not None else manifest.started_at
            if ended >= cutoff:
                continue
            try:
                self.delete(manifest.id, at=now, by=None, reason="retention")
            except SessionroomError:
                continue  # deleted meanwhile, or made unreadable: the next sweep sees it
            deleted.append(manifest.id)
        return deleted
