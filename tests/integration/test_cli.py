"""The `sessionroom` command as a user runs it: a real process, real sockets."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import stat
import sys
from pathlib import Path

import aiohttp
import pytest

from signaling.cli import parse_duration
from signaling.config import Settings, add_arguments, settings_from
from signaling.core.errors import ConfigError
from signaling.secret_file import key_ring, resolve_secret

SESSIONROOM = [sys.executable, "-m", "signaling.cli"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONROOM_")}
    env["SESSIONROOM_STATE_DIR"] = str(tmp_path / "state")
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *SESSIONROOM, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_link_is_minted_offline_with_the_generated_secret(tmp_path: Path) -> None:
    env = _env(tmp_path)
    code, out, err = await _run(
        "link", "--room", "couples-3", "--role", "client", "--name", "Sam",
        "--valid-for", "2h", "--base-url", "https://rooms.example.org", "--max-clients", "2",
        env=env,
    )  # fmt: skip
    assert code == 0, err
    url = out.strip()
    assert url.startswith("https://rooms.example.org/join#")
    secret_path = tmp_path / "state" / "secret"
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert str(secret_path) in err
    settings = Settings(state_dir=tmp_path / "state")
    claims = key_ring(settings, resolve_secret(settings)).verify(url.split("#", 1)[1])
    assert claims.room == "couples-3" and claims.name == "Sam"
    assert claims.expires - claims.not_before == 7200
    assert claims.room_settings.max_clients == 2


async def test_link_refuses_bad_input(tmp_path: Path) -> None:
    env = _env(tmp_path, SESSIONROOM_SECRET="too-short")
    code, _, err = await _run("link", "--room", "r", "--role", "client", "--name", "A", env=env)
    assert code == 2 and "at least 32 bytes" in err
    env = _env(tmp_path)
    code, _, err = await _run("link", "--room", "a/b", "--role", "client", "--name", "A", env=env)
    assert code == 2 and "room id" in err
    code, _, err = await _run("link", "--room", "r", "--role", "admin", "--name", "A", env=env)
    assert code == 2 and "invalid choice" in err


async def test_serve_demo_prints_working_links_and_shuts_down_gracefully(tmp_path: Path) -> None:
    port = _free_port()
    env = _env(tmp_path, SESSIONROOM_PORT=str(port), SESSIONROOM_LOG_FORMAT="json")
    proc = await asyncio.create_subprocess_exec(
        *SESSIONROOM, "serve", "--demo", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    try:
        links: dict[str, str] = {}
        async with asyncio.timeout(20):
            while len(links) < 2:
                line = (await proc.stdout.readline()).decode()
                assert line, "serve exited early"
                for role in ("therapist", "client"):
                    if f"{role} link:" in line:
                        links[role] = line.split(":", 1)[1].strip()
        assert all(u.startswith(f"http://127.0.0.1:{port}/join#") for u in links.values())
        async with aiohttp.ClientSession() as http:
            sockets = {}
            for role, url in links.items():
                ws = await http.ws_connect(f"http://127.0.0.1:{port}/ws")
                await ws.send_json({"type": "join", "token": url.split("#", 1)[1]})
                sockets[role] = (ws, await ws.receive_json(timeout=5))
            therapist, client = sockets["therapist"], sockets["client"]
            assert client[1]["state"] == "waiting"
            await therapist[0].send_json(
                {"type": "admit", "participant": client[1]["participant"]["id"]}
            )
            while (await client[0].receive_json(timeout=5))["type"] != "admitted":
                pass
            proc.send_signal(signal.SIGTERM)
            for ws, _ in sockets.values():
                seen = []
                async for msg in ws:
                    seen.append(json.loads(msg.data)["type"])
                assert seen[-1] == "server_shutdown"
                assert ws.close_code == 1001
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        logs = (await proc.stderr.read()).decode()
        records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
        assert any(r["msg"] == "participant joined" for r in records)
        for token in links.values():
            assert token.split("#", 1)[1] not in logs
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_flags_win_over_environment(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    a, b = "a" * 32, "b" * 40
    env = {
        "SESSIONROOM_PORT": "9000",
        "SESSIONROOM_API_KEYS": f"{a}, {b}",
        "SESSIONROOM_HOST": "::1",
    }
    s = settings_from(parser.parse_args(["--port", "9100"]), env)
    assert (s.port, s.api_keys, s.host) == (9100, (a, b), "::1")
    s = settings_from(parser.parse_args([]), {"SESSIONROOM_ICE_SERVERS": "stun:a:3478,turn:b"})
    assert [x.urls for x in s.ice_servers] == [("stun:a:3478",), ("turn:b",)]
    with pytest.raises(ConfigError):
        settings_from(parser.parse_args(["--port", "nope"]), {})
    with pytest.raises(ConfigError):
        settings_from(parser.parse_args([]), {"SESSIONROOM_ICE_SERVERS": "http://x"})


def test_durations() -> None:
    assert parse_duration("2h") == 7200 and parse_duration("90") == 90
    assert parse_duration("15m") == 900 and parse_duration("1d") == 86400
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("soon")


def test_secret_file_is_reused(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    first = resolve_secret(settings)
    second = resolve_secret(settings)
    assert first.created and not second.created
    assert first.secret == second.secret and len(first.secret) >= 32
    assert resolve_secret(Settings(secret="s" * 40, state_dir=tmp_path)).path is None


async def test_link_carries_the_practices_id_and_fewer_permissions(tmp_path: Path) -> None:
    env = _env(tmp_path)
    code, out, err = await _run(
        "link", "--room", "r", "--role", "therapist", "--name", "Dr Lee",
        "--sub", "clinician-7", "--permissions", "admit,deny,signal,chat", env=env,
    )  # fmt: skip
    assert code == 0, err
    settings = Settings(state_dir=tmp_path / "state")
    claims = key_ring(settings, resolve_secret(settings)).verify(out.strip().split("#", 1)[1])
    assert claims.identity == "clinician-7"
    assert {str(p) for p in claims.permissions} == {"admit", "deny", "signal", "chat"}
    for extra, says in (
        (["--role", "client", "--permissions", "admit"], "cannot carry"),
        (["--role", "client", "--permissions", "fly"], "permissions are some of"),
        (["--role", "client", "--sub", "has space"], "printable"),
        (["--role", "client", "--valid-for", "31d"], "30 days"),
    ):
        code, _, err = await _run("link", "--room", "r", "--name", "A", *extra, env=env)
        assert code == 2 and says in err, (extra, err)
