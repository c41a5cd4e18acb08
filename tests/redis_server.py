"""A real redis-server of the tests' own, on a Unix socket in a temporary folder."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """`append_only`: write the append-only file as a deployment does (the shipped Compose
    file turns it on), each write synced at once, for tests that read what reached the disk.
    Without it (the session's server) Redis keeps nothing on disk."""

    def __init__(self, folder: Path, *, append_only: bool = False) -> None:
        self.folder = folder
        self.append_only = append_only
        self.socket = folder / "redis.sock"
        # Its output, for a benchmark's report or after a failure.
        self.log_path = folder / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        if not Path(REDIS_SERVER).exists():
            raise RuntimeError(f"redis-server is missing at {REDIS_SERVER}: run scripts/test.")
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    REDIS_SERVER,
                    "--port", "0",  # no TCP at all
                    "--unixsocket", str(self.socket),
                    "--unixsocketperm", "700",
                    "--dir", str(self.folder),
                    "--save", "",
                    "--appendonly", "yes" if self.append_only else "no",
                    "--appendfsync", "always",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.socket.unlink(missing_ok=True)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
        self.socket.unlink(missing_ok=True)
