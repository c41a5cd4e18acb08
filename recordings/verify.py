"""`sessionroom recordings verify ID`: is the recording what its manifest and the consent
ledger say it is? (docs/recordings.md, "Verify")

Checks, each reported as one line:
- the ledger's whole chain (every `seq`, `prev` and `hash`);
- the manifest's ledger entries are in the ledger, unchanged;
- every participant in the manifest had said yes before the recording started;
- each file's size and SHA-256 match the manifest.

A deleted recording has no folder: its `deleted` ledger entry is reported instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from recordings.ledger import FileLedger, LedgerEntry, LedgerEvent, check_chain, read_entries
from recordings.manifest import Manifest, ManifestStatus, sha256_of
from recordings.storage import LEDGER_FILE, RecordingStorage, valid_file_name
from signaling.core.errors import NotFound

Check = tuple[bool, str]


def when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def verify(storage_root: Path, recording_id: str) -> list[Check]:
    """One (ok, what) per check. NotFound when the recording is unknown: neither on disk
    nor in the ledger."""
    ledger_path = storage_root / LEDGER_FILE
    storage = RecordingStorage(storage_root, FileLedger(ledger_path))
    entries = [e for _, e in read_entries(ledger_path)]
    try:
        manifest: Manifest | None = storage.read_manifest(recording_id)
    except NotFound:
        manifest = None
    mentioned = [e for e in entries if e.recording == recording_id]
    if manifest is None and not mentioned:
        raise NotFound(f"No recording {recording_id} here or in the ledger.")

    checks = _chain(ledger_path, len(entries))
    if manifest is None:
        return checks + _gone(recording_id, mentioned)
    checks.append(_status(manifest))
    checks += _entries(manifest, {e.seq: e for e in entries})
    checks += _consent(manifest)
    checks += _files(storage, manifest)
    return checks


def _chain(ledger_path: Path, count: int) -> list[Check]:
    problems = check_chain(ledger_path)
    if not problems:
        return [(True, f"ledger: {count} entries, every hash and link intact")]
    return [(False, f"ledger: {p}") for p in problems]


def _gone(recording_id: str, mentioned: list[LedgerEntry]) -> list[Check]:
    deleted = [e for e in mentioned if e.event is LedgerEvent.DELETED]
    if not deleted:
        return [
            (
                False,
                f"{recording_id}: its folder is gone, but the ledger records no deletion",
            )
        ]
    e = deleted[-1]
    return [
        (
            True,
            f"{recording_id}: deleted at {when(e.at)} ({e.reason or 'no reason given'}), "
            f"ledger entry {e.seq}; nothing left to check",
        )
    ]


def _status(m: Manifest) -> Check:
    if m.status is ManifestStatus.RECORDING:
        return (
            False,
            "manifest: still marked recording (being recorded now, or left by a stopped "
            "server that has not closed it yet); its files are not final",
        )
    stopped = f", stopped {when(m.stopped_at)} ({m.stop_reason})" if m.stopped_at else ""
    return (
        True,
        f"manifest: {m.status}, room {m.room}, request {m.session_request}, "
        f"started {when(m.started_at)}{stopped}",
    )


def _entries(m: Manifest, ledger: dict[int, LedgerEntry]) -> list[Check]:
    bad: list[Check] = []
    for e in m.ledger:
        if not e.hash_matches:
            bad.append((False, f"manifest's entry {e.seq} ({e.event}): hash does not match it"))
        elif ledger.get(e.seq) is None:
            bad.append((False, f"manifest's entry {e.seq} ({e.event}) is not in the ledger"))
        elif ledger[e.seq] != e:
            bad.append((False, f"manifest's entry {e.seq} ({e.event}) differs from the ledger's"))
    if bad:
        return bad
    if not m.ledger:
        return [(False, "manifest: it holds no consent entries")]
    return [(True, f"consent: the manifest's {len(m.ledger)} entries are in the ledger, unchanged")]


def _consent(m: Manifest) -> list[Check]:
    started = [e for e in m.ledger if e.event is LedgerEvent.STARTED and e.recording == m.id]
    if not started:
        return [(False, "consent: the manifest's entries do not show this recording starting")]
    start = started[0]
    checks: list[Check] = []
    for p in m.participants:
        answers = [
            e
            for e in m.ledger
            if e.event is LedgerEvent.ANSWERED
            and e.participant == p.id
            and e.request == m.session_request
            and e.seq < start.seq
        ]
        if answers and answers[-1].granted is True:
            checks.append(
                (True, f"consent: {p.id} said yes (entry {answers[-1].seq}) before the start")
            )
        else:
            checks.append((False, f"consent: no yes from {p.id} before the start"))
    return checks


def _files(storage: RecordingStorage, m: Manifest) -> list[Check]:
    folder = storage.root / m.id
    checks: list[Check] = []
    for f in m.files:
        if not valid_file_name(f.name):
            checks.append((False, f"{f.name!r}: not a recording file name"))
            continue
        path = folder / f.name
        if not path.is_file():
            checks.append((False, f"{f.name}: missing"))
            continue
        size, digest = sha256_of(path)
        if size != f.bytes:
            checks.append((False, f"{f.name}: {size} bytes, the manifest says {f.bytes}"))
        elif digest != f.sha256:
            checks.append((False, f"{f.name}: SHA-256 differs from the manifest's (changed?)"))
        else:
            checks.append((True, f"{f.name}: {size} bytes, SHA-256 as in the manifest"))
    if not m.files and m.status is not ManifestStatus.RECORDING:
        checks.append((True, "files: none were written (no media arrived)"))
    return checks
