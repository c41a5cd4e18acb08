"""The consent ledger: an append-only, hash-chained log of every request, answer, start,
stop and deletion (docs/recordings.md, "The consent ledger").

Each entry's `hash` is the SHA-256 of the entry without `hash`, as JSON with sorted keys and
no spaces; `prev` is the previous entry's hash, so an edited, deleted, inserted or moved
line breaks the chain where it happened. Entries carry ids only: never a display name, a
token or chat.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

GENESIS = "0" * 64


class LedgerEvent(StrEnum):
    """What a ledger entry records; the value is the entry's `event` in the file."""

    REQUESTED = "requested"  # a therapist asked to record (`participant`: who asked)
    ANSWERED = "answered"  # someone asked said yes or no (`granted`)
    STARTED = "started"  # everyone asked said yes: a recording began
    STOPPED = "stopped"  # the request closed, or its recording stopped (`reason`)
    DELETED = "deleted"  # a recording's files were removed (`reason`)


def _event(value: str) -> LedgerEvent:
    try:
        return LedgerEvent(value)
    except ValueError:
        raise ValueError(
            f"'event' must be one of {', '.join(sorted(LedgerEvent))}, not {value!r}"
        ) from None


# How far back from the end of the file the last entry is looked for, a block at a time.
_TAIL_BLOCK = 8192


def entry_hash(fields_without_hash: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of an entry's fields, `hash` left out, in their canonical JSON."""
    canonical = json.dumps(dict(fields_without_hash), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data[key]
    if value is not None and not isinstance(value, str):
        raise ValueError(f"'{key}' must be text or null")
    return value


def _hex64(value: object, key: str) -> str:
    if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
        raise ValueError(f"'{key}' must be 64 lowercase hex digits")
    return value


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    at: float
    event: LedgerEvent
    room: str
    request: str | None
    recording: str | None
    participant: str | None
    granted: bool | None
    reason: str | None
    prev: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fields_without_hash(self) -> dict[str, Any]:
        data = self.to_dict()
        del data["hash"]
        return data

    @property
    def hash_matches(self) -> bool:
        return entry_hash(self.fields_without_hash()) == self.hash

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        """Raises ValueError unless `data` has exactly an entry's fields, of the right types."""
        if not isinstance(data, Mapping):
            raise ValueError("an entry must be a JSON object")
        expected = {f.name for f in fields(cls)}
        if set(data) != expected:
            raise ValueError("an entry must have exactly the fields " + ", ".join(sorted(expected)))
        seq, at, event, room, granted = (data[k] for k in ("seq", "at", "event", "room", "granted"))
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
            raise ValueError("'seq' must be a positive integer")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise ValueError("'at' must be a number")
        if not isinstance(event, str):
            raise ValueError("'event' must be text")
        if not isinstance(room, str) or not room:
            raise ValueError("'room' must be text")
        if granted is not None and not isinstance(granted, bool):
            raise ValueError("'granted' must be true, false or null")
        return cls(
            seq=seq,
            at=float(at),
            event=_event(event),
            room=room,
            request=_optional_str(data, "request"),
            recording=_optional_str(data, "recording"),
            participant=_optional_str(data, "participant"),
            granted=granted,
            reason=_optional_str(data, "reason"),
            prev=_hex64(data["prev"], "prev"),
            hash=_hex64(data["hash"], "hash"),
        )


class ConsentLedger(Protocol):
    """Where consent is recorded. Appends are synchronous and small."""

    def append(
        self,
        event: LedgerEvent,
        *,
        at: float,
        room: str,
        request: str | None = None,
        recording: str | None = None,
        participant: str | None = None,
        granted: bool | None = None,
        reason: str | None = None,
    ) -> LedgerEntry: ...

    def entries(self) -> list[LedgerEntry]: ...


def _chained(
    seq: int,
    prev: str,
    event: LedgerEvent,
    *,
    at: float,
    room: str,
    request: str | None,
    recording: str | None,
    participant: str | None,
    granted: bool | None,
    reason: str | None,
) -> LedgerEntry:
    event = _event(event)
    if not math.isfinite(at):
        raise ValueError("a ledger entry's time must be a finite number")
    if not room:
        raise ValueError("a ledger entry needs a room")
    body: dict[str, Any] = {
        "seq": seq,
        "at": float(at),
        "event": event,
        "room": room,
        "request": request,
        "recording": recording,
        "participant": participant,
        "granted": granted,
        "reason": reason,
        "prev": prev,
    }
    return LedgerEntry(**body, hash=entry_hash(body))


def _line(entry: LedgerEntry) -> bytes:
    # Fields in their natural order for people reading the file; the hash does not depend
    # on how a line is laid out, only on its values.
    return (json.dumps(entry.to_dict()) + "\n").encode()


class MemoryLedger:
    """A ledger kept in memory: for tests of the code that writes to it."""

    def __init__(self) -> None:
        self._entries: list[LedgerEntry] = []

    def append(
        self,
        event: LedgerEvent,
        *,
        at: float,
        room: str,
        request: str | None = None,
        recording: str | None = None,
        participant: str | None = None,
        granted: bool | None = None,
        reason: str | None = None,
    ) -> LedgerEntry:
        last = self._entries[-1] if self._entries else None
        entry = _chained(
            last.seq + 1 if last else 1,
            last.hash if last else GENESIS,
            event,
            at=at,
            room=room,
            request=request,
            recording=recording,
            participant=participant,
            granted=granted,
            reason=reason,
        )
        self._entries.append(entry)
        return entry

    def entries(self) -> list[LedgerEntry]:
        return list(self._entries)


class FileLedger:
    """`ledger.jsonl`: one JSON entry a line, 0600, in a 0700 folder.

    Each append takes an exclusive `flock` on the file while it reads the last entry and
    writes the next, then flushes and fsyncs, so several processes (or threads, each append
    opens the file anew) on one host keep one chain. Nothing touches the disk until the
    first append or read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self, flags: int) -> int:
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.path.parent, 0o700)
        fd = os.open(self.path, flags | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def append(
        self,
        event: LedgerEvent,
        *,
        at: float,
        room: str,
        request: str | None = None,
        recording: str | None = None,
        participant: str | None = None,
        granted: bool | None = None,
        reason: str | None = None,
    ) -> LedgerEntry:
        fd = self._open(os.O_RDWR | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            last, torn = _last_entry(fd, size)
            entry = _chained(
                last.seq + 1 if last else 1,
                last.hash if last else GENESIS,
                event,
                at=at,
                room=room,
                request=request,
                recording=recording,
                participant=participant,
                granted=granted,
                reason=reason,
            )
            # A line cut short by a crash stays visible (`check_chain` reports it), on a line
            # of its own; the chain carries on from the last whole entry.
            data = (b"\n" if torn else b"") + _line(entry)
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
            return entry
        finally:
            os.close(fd)  # also releases the lock

    def entries(self) -> list[LedgerEntry]:
        """Every whole entry in the file, in order; lines that are not entries are skipped
        (`check_chain` reports them)."""
        return [e for _, e in read_entries(self.path)]


def _last_entry(fd: int, size: int) -> tuple[LedgerEntry | None, bool]:
    """The last line that is an entry, and whether the file ends in an unfinished line."""
    if size == 0:
        return None, False
    torn = os.pread(fd, 1, size - 1) != b"\n"
    end = size
    tail = b""
    while end > 0:
        start = max(0, end - _TAIL_BLOCK)
        tail = os.pread(fd, end - start, start) + tail
        end = start
        lines = tail.split(b"\n")
        # The first piece may be the end of a longer line unless the file's start is reached.
        complete = lines if end == 0 else lines[1:]
        for raw in reversed(complete):
            entry = _parse(raw)
            if entry is not None:
                return entry, torn
    return None, torn


def _parse(raw: bytes | str) -> LedgerEntry | None:
    try:
        return LedgerEntry.from_dict(json.loads(raw))
    except ValueError:
        return None


def read_entries(path: Path) -> list[tuple[int, LedgerEntry]]:
    """(line number, entry) for every line of the file that is an entry."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    out: list[tuple[int, LedgerEntry]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        entry = _parse(line) if line.strip() else None
        if entry is not None:
            out.append((number, entry))
    return out


def check_chain(path: Path) -> list[str]:
    """Everything wrong with the ledger's chain, in words; an empty list when it is whole.

    Every line must be an entry whose hash recomputes from its contents, whose `seq` is one
    more than the line before and whose `prev` is that line's hash. Removing the last lines
    cannot be seen here; `verify` finds that through the manifests, which keep their
    entries.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return [f"there is no ledger at {path}"]
    except (OSError, UnicodeDecodeError) as e:
        return [f"the ledger at {path} cannot be read: {e}"]
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last entry
    problems: list[str] = []
    prev_seq, prev_hash = 0, GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            raw = json.loads(line)
        except ValueError:
            problems.append(f"line {number}: not a JSON entry (edited, or cut short?)")
            continue
        try:
            entry = LedgerEntry.from_dict(raw)
        except ValueError as e:
            problems.append(f"line {number}: not a ledger entry ({e})")
            continue
        name = f"entry {entry.seq}" + ("" if entry.seq == number else f" (line {number})")
        if entry_hash({k: v for k, v in raw.items() if k != "hash"}) != entry.hash:
            problems.append(f"{name}: hash does not match its contents (edited?)")
        if entry.seq != prev_seq + 1:
            problems.append(
                f"{name}: expected seq {prev_seq + 1} after {prev_seq} "
                "(a line deleted, inserted or moved?)"
            )
        if entry.prev != prev_hash:
            problems.append(
                f"{name}: 'prev' is not the hash of the entry before it "
                "(a line deleted, inserted, moved or edited?)"
            )
        prev_seq, prev_hash = entry.seq, entry.hash
    return problems
