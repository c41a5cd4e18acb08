"""`sessionroom recordings verify` and `list`, run as a user runs them."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli import _env, _run
from tests.recording_fixtures import make_webm, storage_at, store_recording


async def test_verify_passes_then_fails_after_an_edit(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    m = store_recording(storage_at(root), "r-1", webm=make_webm(tmp_path / "source.webm"))
    env = _env(tmp_path, SESSIONROOM_RECORDINGS_DIR=str(root))

    code, out, err = await _run("recordings", "verify", m.id, env=env)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines and all(line.startswith("ok: ") for line in lines)
    assert any("p-2.webm" in line for line in lines)

    ledger = root / "ledger.jsonl"
    ledger.write_text(ledger.read_text().replace('"granted": true', '"granted": false', 1))
    code, out, _ = await _run("recordings", "verify", m.id, env=env)
    assert code == 1
    assert "FAIL: ledger: entry 2: hash does not match its contents (edited?)" in out


async def test_verify_an_unknown_recording(tmp_path: Path) -> None:
    env = _env(tmp_path)
    root = tmp_path / "elsewhere"
    for unknown in ("rec-20261126-093000-zzzzzz", "../../etc/passwd"):
        code, out, err = await _run(
            "recordings", "verify", unknown, "--recordings-dir", str(root), env=env
        )
        assert (code, out) == (2, "")
        assert f"No recording {unknown} here or in the ledger" in err


async def test_list(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    storage = storage_at(root)
    webm = make_webm(tmp_path / "source.webm")
    first = store_recording(storage, "r-1", webm=webm, started_at=1764149400.0)
    second = store_recording(storage, "r-2", webm=webm, started_at=1764153000.0)
    env = _env(tmp_path)
    code, out, _ = await _run("recordings", "list", "--recordings-dir", str(root), env=env)
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [second.id, first.id]
    assert "room r-2" in lines[0] and "complete" in lines[0] and "p-1.webm" in lines[0]
    code, out, _ = await _run(
        "recordings", "list", "--room", "r-1", "--recordings-dir", str(root), env=env
    )
    assert [line.split()[0] for line in out.splitlines()] == [first.id]
