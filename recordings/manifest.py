"""A recording's manifest (docs/recordings.md, "Manifest"), and how a finished file is
described in it."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import av

from recordings.ledger import LedgerEntry

log = logging.getLogger("sessionroom.recordings")


class ManifestStatus(StrEnum):
    """A recording's `status` in its manifest."""

    RECORDING = "recording"  # being written (or left so by a node that was killed)
    COMPLETE = "complete"  # stopped, and every participant's parts merged into their file
    INTERRUPTED = "interrupted"  # closed by `recover` after the node writing it died


_CHUNK = 1 << 20


def _status(value: str) -> ManifestStatus:
    try:
        return ManifestStatus(value)
    except ValueError:
        raise ValueError(
            f"a recording's status is one of {', '.join(sorted(ManifestStatus))}"
        ) from None


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be text")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"'{key}' must be text or null")
    return value


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"'{key}' must be a number")
    return float(value)


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data[key]
    if not isinstance(value, list):
        raise ValueError(f"'{key}' must be a list")
    return value


@dataclass(frozen=True)
class ParticipantInfo:
    id: str
    role: str
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "name": self.name}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParticipantInfo:
        return cls(id=_str(data, "id"), role=_str(data, "role"), name=_str(data, "name"))


@dataclass(frozen=True)
class FileInfo:
    name: str
    participant: str
    bytes: int
    sha256: str
    duration: float
    codecs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "participant": self.participant,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "duration": self.duration,
            "codecs": list(self.codecs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileInfo:
        size = data["bytes"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("'bytes' must be a whole number")
        codecs = _list(data, "codecs")
        if not all(isinstance(c, str) for c in codecs):
            raise ValueError("'codecs' must be a list of names")
        return cls(
            name=_str(data, "name"),
            participant=_str(data, "participant"),
            bytes=size,
            sha256=_str(data, "sha256"),
            duration=_number(data, "duration"),
            codecs=tuple(codecs),
        )


@dataclass(frozen=True)
class Manifest:
    id: str
    room: str
    session_request: str
    room_opened_at: float
    status: ManifestStatus
    participants: tuple[ParticipantInfo, ...]
    started_at: float
    stopped_at: float | None = None
    stop_reason: str | None = None
    files: tuple[FileInfo, ...] = ()
    ledger: tuple[LedgerEntry, ...] = ()

    def __post_init__(self) -> None:
        # Given as text, the status becomes the enum's member (the value is the same).
        object.__setattr__(self, "status", _status(self.status))

    def summary(self) -> dict[str, Any]:
        """The manifest without its ledger entries: what a list of recordings shows."""
        data = self.to_dict()
        del data["ledger"]
        return data

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "room": self.room,
            "session": {"request": self.session_request, "room_opened_at": self.room_opened_at},
            "status": self.status,
            "participants": [p.to_dict() for p in self.participants],
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "stop_reason": self.stop_reason,
            "files": [f.to_dict() for f in self.files],
            "ledger": [e.to_dict() for e in self.ledger],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Raises ValueError for anything that is not a manifest."""
        try:
            session = data["session"]
            if not isinstance(session, Mapping):
                raise ValueError("'session' must be an object")
            stopped_at = None if data.get("stopped_at") is None else _number(data, "stopped_at")
            return cls(
                id=_str(data, "id"),
                room=_str(data, "room"),
                session_request=_str(session, "request"),
                room_opened_at=_number(session, "room_opened_at"),
                status=_status(_str(data, "status")),
                participants=tuple(
                    ParticipantInfo.from_dict(p) for p in _list(data, "participants")
                ),
                started_at=_number(data, "started_at"),
                stopped_at=stopped_at,
                stop_reason=_optional_str(data, "stop_reason"),
                files=tuple(FileInfo.from_dict(f) for f in _list(data, "files")),
                ledger=tuple(LedgerEntry.from_dict(e) for e in _list(data, "ledger")),
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not a manifest: {e!r}") from None


def sha256_of(path: Path) -> tuple[int, str]:
    """A file's size and SHA-256 (hex), read a megabyte at a time."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _media(path: Path) -> tuple[float, tuple[str, ...]]:
    """Duration in seconds and the codec of each stream, without decoding anything."""
    try:
        with av.open(str(path)) as container:
            codecs = tuple(str(s.codec_context.name) for s in container.streams)
            if container.duration is not None and container.duration > 0:
                return float(container.duration / av.time_base), codecs
            end = 0.0
            try:
                for packet in container.demux():
                    if packet.pts is None or packet.time_base is None:
                        continue
                    stop = packet.pts + (packet.duration or 0)
                    end = max(end, float(stop * packet.time_base))
            except (av.FFmpegError, EOFError):
                pass  # a file cut short: what was read so far counts
            return end, codecs
    except (av.FFmpegError, OSError, EOFError):
        log.warning("a recording file could not be opened", extra={"file": path.name})
        return 0.0, ()


def describe_file(path: Path, participant: str) -> FileInfo:
    """The manifest's entry for one finished file. Reads the whole file: call it off the
    event loop (`asyncio.to_thread`)."""
    size, digest = sha256_of(path)
    duration, codecs = _media(path)
    return FileInfo(
        name=path.name,
        participant=participant,
        bytes=size,
        sha256=digest,
        duration=round(duration, 3),
        codecs=codecs,
    )
