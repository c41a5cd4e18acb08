"""A real coturn (Debian's `coturn` package) of the tests' own, on 127.0.0.1 only.

It runs unprivileged in a temporary folder: its own empty config file (so that
/etc/turnserver.conf, which logs to syslog, is not read), its own SQLite user database and
pid file, UDP only, with the shared-secret ("TURN REST API") scheme that Sessionroom's
credentials are minted for.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from aioice import stun

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "sessionroom.test"
HOST = "127.0.0.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class TurnServer:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.secret = secrets.token_urlsafe(24)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    @property
    def url(self) -> str:
        return f"turn:{HOST}:{self.port}?transport=udp"

    @property
    def log(self) -> str:
        path = self.folder / "turnserver.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def command(self) -> list[str]:
        return [
            TURNSERVER,
            "-c", str(self.folder / "turnserver.conf"),
            f"--listening-ip={HOST}",
            f"--relay-ip={HOST}",
            f"--listening-port={self.port}",
            "--use-auth-secret",
            f"--static-auth-secret={self.secret}",
            f"--realm={REALM}",
            "--no-tcp",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--no-rfc5780",
            "--no-software-attribute",
            "--allow-loopback-peers",
            f"--userdb={self.folder / 'turndb'}",
            f"--pidfile={self.folder / 'turnserver.pid'}",
            "--log-file=stdout",
            "--simple-log",
        ]  # fmt: skip

    def start(self) -> None:
        if not Path(TURNSERVER).exists():
            raise RuntimeError(f"turnserver is missing at {TURNSERVER}: run scripts/setup --test.")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "turnserver.conf").write_text("")
        self.port = free_udp_port()
        with (self.folder / "turnserver.log").open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.folder
            )
        deadline = time.monotonic() + 10
        while not self._answers_binding():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"turnserver did not start:\n{self.log}")

    def _answers_binding(self) -> bool:
        """Whether a STUN Binding request on the TURN port gets an answer yet."""
        request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.1)
            try:
                s.sendto(bytes(request), self.address)
                data = s.recv(2048)
            except OSError:  # a timeout, or ICMP port unreachable before it listens
                return False
        answer = stun.parse_message(data)
        return answer.transaction_id == request.transaction_id

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
