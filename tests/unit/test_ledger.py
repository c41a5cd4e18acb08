"""The consent ledger: a hash chain that shows any edit, deletion or reordering."""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import stat
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from recordings.ledger import (
    GENESIS,
    FileLedger,
    LedgerEntry,
    LedgerEvent,
    MemoryLedger,
    check_chain,
    entry_hash,
)


def _fill(ledger: FileLedger | MemoryLedger, n: int = 4) -> list[LedgerEntry]:
    out = [
        ledger.append(LedgerEvent.REQUESTED, at=100.0, room="r-1", request="q-1", participant="p-1")
    ]
    for i in range(1, n):
        out.append(
            ledger.append(
                LedgerEvent.ANSWERED, at=100.0 + i, room="r-1", request="q-1", participant=f"p-{i}",
                granted=True,
            )
        )  # fmt: skip
    return out


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_entries_form_a_chain(tmp_path: Path) -> None:
    path = tmp_path / "recordings" / "ledger.jsonl"
    ledger = FileLedger(path)
    assert not path.parent.exists()  # nothing on disk until the first append
    written = _fill(ledger)
    assert [e.seq for e in written] == [1, 2, 3, 4]
    assert written[0].prev == GENESIS
    for before, after in itertools.pairwise(written):
        assert after.prev == before.hash
    for e in written:
        assert e.hash == entry_hash({k: v for k, v in e.to_dict().items() if k != "hash"})
        assert e.hash_matches
    assert ledger.entries() == written
    assert FileLedger(path).entries() == written  # another writer sees the same chain
    assert check_chain(path) == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    first = json.loads(_lines(path)[0])
    assert first == written[0].to_dict()
    assert set(first) == {
        "seq", "at", "event", "room", "request", "recording", "participant", "granted",
        "reason", "prev", "hash",
    }  # fmt: skip


def test_hash_is_of_sorted_compact_json() -> None:
    fields = {"b": 1, "a": None}
    assert entry_hash(fields) == hashlib.sha256(b'{"a":null,"b":1}').hexdigest()


def test_memory_ledger_chains_the_same_way(tmp_path: Path) -> None:
    memory, file = MemoryLedger(), FileLedger(tmp_path / "ledger.jsonl")
    assert _fill(memory) == _fill(file)
    assert memory.entries() == file.entries()


def test_unknown_events_and_bad_entries_are_refused(tmp_path: Path) -> None:
    ledger = FileLedger(tmp_path / "ledger.jsonl")
    with pytest.raises(ValueError):
        ledger.append("rewound", at=1.0, room="r-1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ledger.append(LedgerEvent.REQUESTED, at=float("nan"), room="r-1")
    good = ledger.append(LedgerEvent.REQUESTED, at=1.0, room="r-1", request="q-1").to_dict()
    for broken in (
        {**good, "extra": 1},
        {**good, "seq": "1"},
        {**good, "granted": "yes"},
        {**good, "hash": "xyz"},
        {k: v for k, v in good.items() if k != "room"},
    ):
        with pytest.raises(ValueError):
            LedgerEntry.from_dict(broken)


def _append_many(path: str, who: str, n: int) -> None:
    ledger = FileLedger(Path(path))
    for i in range(n):
        ledger.append(LedgerEvent.ANSWERED, at=float(i), room="r-1", participant=who, granted=True)


def test_threads_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    threads = [
        threading.Thread(target=_append_many, args=(str(path), f"p-{t}", 25)) for t in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert check_chain(path) == []
    assert [e.seq for e in FileLedger(path).entries()] == list(range(1, 101))


def test_processes_appending_at_once_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=context) as pool:
        jobs = [pool.submit(_append_many, str(path), f"p-{n}", 40) for n in range(3)]
        for job in jobs:
            job.result()
    assert check_chain(path) == []
    entries = FileLedger(path).entries()
    assert [e.seq for e in entries] == list(range(1, 121))
    assert {e.participant for e in entries} == {"p-0", "p-1", "p-2"}


def test_an_edited_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    _fill(FileLedger(path))
    lines = _lines(path)
    lines[2] = lines[2].replace('"granted": true', '"granted": false')
    _write(path, lines)
    assert check_chain(path) == ["entry 3: hash does not match its contents (edited?)"]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    _fill(FileLedger(path))
    lines = _lines(path)
    forged = json.loads(lines[1])
    forged["granted"] = False
    forged["hash"] = entry_hash({k: v for k, v in forged.items() if k != "hash"})
    lines[1] = json.dumps(forged)
    _write(path, lines)
    problems = check_chain(path)
    assert len(problems) == 1 and problems[0].startswith("entry 3: 'prev' is not the hash")


def test_a_deleted_line_is_found(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    _fill(FileLedger(path))
    lines = _lines(path)
    del lines[1]
    _write(path, lines)
    problems = check_chain(path)
    assert any("entry 3 (line 2): expected seq 2" in p for p in problems), problems
    assert any("entry 3 (line 2): 'prev'" in p for p in problems), problems


def test_reordered_lines_are_found(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    _fill(FileLedger(path))
    lines = _lines(path)
    lines[1], lines[2] = lines[2], lines[1]
    _write(path, lines)
    problems = check_chain(path)
    assert any(p.startswith("entry 3 (line 2)") for p in problems), problems
    assert any(p.startswith("entry 2 (line 3)") for p in problems), problems


def test_garbage_and_a_missing_file_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    assert check_chain(path) == [f"there is no ledger at {path}"]
    _fill(FileLedger(path))
    lines = _lines(path)
    lines.insert(1, "not json")
    _write(path, lines)
    assert check_chain(path) == ["line 2: not a JSON entry (edited, or cut short?)"]


def test_a_line_cut_short_by_a_crash_is_kept_visible_and_the_chain_goes_on(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = FileLedger(path)
    written = _fill(ledger, 2)
    with path.open("a") as f:
        f.write('{"seq": 3, "at": 1')  # a write the crash cut off
    after = ledger.append(LedgerEvent.STOPPED, at=200.0, room="r-1", reason="interrupted")
    assert (after.seq, after.prev) == (3, written[-1].hash)
    assert check_chain(path) == ["line 3: not a JSON entry (edited, or cut short?)"]
    assert ledger.entries() == [*written, after]
