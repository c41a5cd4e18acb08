"""A bounded run of the protocol fuzz (bench/fuzz.py) against real server processes.

A few thousand generated and mutated messages over many sockets and rooms, then a fresh
room that must still work. Fails on any internal_error, any traceback in a node's log, or
any message delivered to a socket of another room. The seed is fixed so that a failure can
be repeated (`FUZZ_SEED` picks another); the full run is `python -m bench.fuzz`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from bench.fuzz import (
    INBOUND_TYPES,
    FuzzConfig,
    FuzzReport,
    Target,
    format_report,
    run_fuzz,
)
from tests.integration.test_nodes import two_nodes
from tests.redis_server import RedisServer
from tests.server_process import Server
from tests.support import SECRET

pytestmark = pytest.mark.network

MESSAGES = 3000
JOIN_TIMEOUT = 2.0


def _config(room_prefix: str) -> FuzzConfig:
    return FuzzConfig(
        messages=MESSAGES,
        seed=int(os.environ.get("FUZZ_SEED", "20240611")),
        rooms=12,
        silent_sockets=2,
        join_timeout=JOIN_TIMEOUT,
        max_seconds=60,
        room_prefix=room_prefix,
        rate_note="the nodes' defaults (burst 50, 50/s)",
    )


def _target(server: Server, name: str) -> Target:
    assert server.proc is not None
    return Target(name, server.url, server.proc.pid, server.log_path)


def _check(report: FuzzReport) -> None:
    """No internal_error, no traceback in any node's log, no cross-room delivery, the fresh
    room worked, and every message was sent: the whole report is the failure's message."""
    text = format_report(report)
    if report.problems():
        pytest.fail(text, pytrace=False)
    # The run did what it says: every message type, refusals of many kinds, and joins.
    if not (
        report.tally.joins["joined"] > 0
        and len(report.tally.errors) >= 8
        and all(report.tally.kinds_sent[k] for k in INBOUND_TYPES)
    ):
        pytest.fail(f"the fuzz did not cover the protocol:\n{text}", pytrace=False)


async def test_fuzz_one_node(tmp_path: Path) -> None:
    server = Server(tmp_path, SESSIONROOM_JOIN_TIMEOUT_SECONDS=str(JOIN_TIMEOUT))
    await server.start()
    try:
        report = await run_fuzz([_target(server, "M")], SECRET.encode(), _config("fz1"))
    finally:
        await server.close()
    _check(report)


async def test_fuzz_two_nodes_on_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    async with two_nodes(tmp_path, redis_server) as (a, b):
        targets = [_target(a, "A"), _target(b, "B")]
        # two_nodes keeps the default join timeout: no silent sockets to wait for.
        config = replace(_config("fz2"), silent_sockets=0)
        report = await run_fuzz(targets, SECRET.encode(), config)
    _check(report)
