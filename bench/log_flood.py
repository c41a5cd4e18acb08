"""The audit's log flood: what garbage makes a real node write to its log, at its default
level (info).

  before join   --sockets sockets at once, each sending '[' * 5000 + ']' * 5000 as its
                first message (the service used to log a traceback for each);
  after join    one therapist's socket sending the same --messages times.

It prints the refusals received and the log's growth in each phase, and the tracebacks.
Run from the project root, inside a loopback-only namespace:
  unshare --net -- bash -c 'ip link set lo up && .venv/bin/python -m bench.log_flood'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench.common import Server, join_text
from signaling.core.model import Role
from signaling.tokens import KeyRing
from tests.support import SECRET

DEEP = "[" * 5000 + "]" * 5000


async def run(sockets: int, messages: int) -> None:
    server = Server(Path(tempfile.mkdtemp(prefix="bench-log-flood-")))
    server.env["SESSIONROOM_MAX_SOCKETS_PER_ADDRESS"] = "0"  # every socket is from 127.0.0.1
    server.env["SESSIONROOM_LOG_LEVEL"] = "info"
    await server.start()
    ws_url = server.url.replace("http", "ws", 1) + "/ws"
    try:
        base = server.log_path.stat().st_size
        async with aiohttp.ClientSession() as http:
            before: Counter[str] = Counter()

            async def garbage_first() -> None:
                async with http.ws_connect(ws_url) as ws:
                    await ws.send_str(DEEP)
                    before[json.loads((await ws.receive()).data)["code"]] += 1

            start = time.monotonic()
            await asyncio.gather(*(garbage_first() for _ in range(sockets)))
            took = time.monotonic() - start
            grown_before = server.log_path.stat().st_size - base

            join = join_text(KeyRing(SECRET.encode()), "flood", Role.THERAPIST)
            after: Counter[str] = Counter()
            async with http.ws_connect(ws_url) as ws:
                await ws.send_str(join)
                assert json.loads((await ws.receive()).data)["type"] == "joined"
                for _ in range(messages):
                    await ws.send_str(DEEP)
                while sum(after.values()) < messages:
                    message = json.loads((await ws.receive()).data)
                    if message["type"] == "error":
                        after[message["code"]] += 1
            grown_after = server.log_path.stat().st_size - base - grown_before
    finally:
        await server.stop()
    print(f"before join: {sockets} sockets in {took:.2f} s, answered {dict(before)}")
    print(f"  log grew by {grown_before} bytes")
    print(f"after join: {messages} messages on one socket, answered {dict(after)}")
    print(f"  log grew by {grown_after} bytes (the join line, and one line per refusal code)")
    print(f"tracebacks in the log: {server.log().count('Traceback')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.sockets, args.messages))


if __name__ == "__main__":
    main()
