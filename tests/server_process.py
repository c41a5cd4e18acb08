"""The real `sessionroom serve` process, for tests that need one (or several nodes), and for
the benchmarks (bench/common.py), which measure this same process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.support import SECRET

SESSIONROOM = [sys.executable, "-m", "signaling.cli"]
# How long a process may take to answer before `wait_answering` gives up on it.
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_answering(url: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
    """Until `url` answers 200, polled; fails at once if the process exits, and after
    START_TIMEOUT, with the end of the process's log either way."""

    def failed(why: str) -> AssertionError:
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        return AssertionError(f"{why}:\n" + "\n".join(log.splitlines()[-20:]))

    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.returncode is not None:
                raise failed(f"the process exited ({proc.returncode}) before {url} answered")
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise failed(f"{url} did not answer")
            await asyncio.sleep(0.05)


class Server:
    """`sessionroom serve` as a real process on a port of its own; `extra` adds settings
    (SESSIONROOM_* variables), e.g. a Redis URL and a node id for several nodes."""

    def __init__(self, tmp_path: Path, **extra: str) -> None:
        self.port = free_port()
        self.recordings = tmp_path / "recordings"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONROOM_")}
        self.env.update(
            SESSIONROOM_SECRET=SECRET,
            SESSIONROOM_STATE_DIR=str(tmp_path / "state"),
            SESSIONROOM_RECORDINGS_DIR=str(self.recordings),
            SESSIONROOM_ICE_LOOPBACK="1",
            SESSIONROOM_PORT=str(self.port),
            SESSIONROOM_GRACE_SECONDS="20",
        )
        self.env.update(extra)
        # Its log (stdout and stderr), to read in a test or after a failure.
        self.log_path = tmp_path / f"serve-{self.env.get('SESSIONROOM_NODE_ID', 'node')}.log"
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *SESSIONROOM, "serve", env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        await wait_answering(f"{self.url}/readyz", self.proc, self.log_path)

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
