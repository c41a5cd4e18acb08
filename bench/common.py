"""What the benchmarks share: figures (percentiles, medians, tables, targets), meters (CPU,
memory, a process's log), and the servers they measure.

A Sessionroom node is the tests' own `tests.server_process.Server`, and a redis-server the
tests' own `tests.redis_server.RedisServer`: a benchmark measures the very process the suite
checks, started the same way, and adds only its settings and its meters. So bench imports
from tests/, and tests/ never imports these helpers (it imports a benchmark only to run a
bounded form of it). The meters read Linux's /proc.

Run every benchmark from the project root as a module (`python -m bench.<name>`), so that
`bench` and `tests` are importable as packages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from signaling.core.model import Role
from signaling.tokens import KeyRing
from tests.redis_server import RedisServer as RedisServer
from tests.server_process import Server as Server
from tests.server_process import free_port as free_port
from tests.server_process import wait_answering as wait_answering

# About the size of a trickled ICE candidate, the commonest signalling message.
CANDIDATE = (
    "candidate:842163049 1 udp 1677729535 192.0.2.10 50123 typ srflx raddr 0.0.0.0 rport 0 "
    "generation 0 ufrag sXbX network-cost 999"
)
# Percent of one core used by other processes during a measured stretch, past which the
# report says that the figures are disturbed.
NOISY_OTHERS_PERCENT = 10.0


class BenchError(Exception):
    pass


def argument_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's command line: `python -m <module>`, its --help the module's docstring."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


# ---- figures ----


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: a value that was actually measured (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def linear_percentile(values: Sequence[float], q: float) -> float:
    """Interpolated between the two nearest ranks, as numpy's default does."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: Iterable[float]) -> float:
    """statistics.median, or NaN for no values."""
    values = list(values)
    return statistics.median(values) if values else math.nan


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a Markdown table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        print("| " + " | ".join(cells) + " |")


def heading(title: str) -> str:
    """The first line of a report: what, when, and on what."""
    return (
        f"{title}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}"
    )


class Targets:
    """Prints "Targets:", then each target as met or NOT MET; `met`: all of them so far."""

    def __init__(self) -> None:
        self.met = True
        print("Targets:")

    def check(self, ok: bool, text: str) -> None:
        self.met &= ok
        print(f"  [{'met' if ok else 'NOT MET'}] {text}")


def noisy_warning(others: Sequence[float], stretches: str) -> None:
    """Say so if other processes used much CPU during any measured stretch."""
    noisy = [o for o in others if o > NOISY_OTHERS_PERCENT]
    if noisy:
        print(
            f"Warning: in {len(noisy)} of {len(others)} measured {stretches} other processes"
            f" used over {NOISY_OTHERS_PERCENT:g}% of a core (up to {max(noisy):.0f}%):"
            " those figures are disturbed."
        )


def finished(met: bool, started: float) -> None:
    """The last line of a report; `started` is a time.perf_counter() reading."""
    print(
        f"{'All targets met' if met else 'Some targets NOT met'};"
        f" total time {time.perf_counter() - started:.0f} s"
    )


@dataclass
class ErrorLog:
    """`error` (and other unexpected) messages from the servers: counted by where they came
    from and their code, the first few printed as `line` says."""

    line: str = "  ! {where}: {msg}"
    counts: Counter[str] = field(default_factory=Counter)
    printed: int = 0

    def add(self, where: str, msg: dict[str, Any]) -> None:
        self.counts[f"{where}:{msg.get('code', msg.get('type'))}"] += 1
        if self.printed < 10:
            self.printed += 1
            print(self.line.format(where=where, msg=msg), flush=True)


# ---- meters ----


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """utime + stime of a process (every thread), or of one of its threads: fields 14 and 15
    of /proc/<pid>/stat (the command name, field 2, may hold spaces)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    stat = Path(path).read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time of the whole machine (all cores) not idle, steal included."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int | None:
    """A process's resident memory, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class CpuUse:
    """CPU over an interval, in percent of one core: each measured process, this one (the
    load generator), and the rest of the machine (other processes, such as someone's test
    run, and steal)."""

    seconds: float
    procs: dict[str, float]
    load_generator: float
    others: float


class CpuMeter:
    """Started at construction; `read` gives the use since then. `procs`: name -> pid."""

    def __init__(self, procs: Mapping[str, int]) -> None:
        self._procs = dict(procs)
        self._start = self._now()

    def _now(self) -> tuple[float, list[float], float, float]:
        return (
            time.perf_counter(),
            [cpu_seconds(pid) for pid in self._procs.values()],
            time.process_time(),
            machine_busy_seconds(),
        )

    def read(self) -> CpuUse:
        wall, procs, own, machine = self._now()
        wall -= self._start[0]
        used = [b - a for a, b in zip(self._start[1], procs, strict=True)]
        own -= self._start[2]
        others = max(0.0, machine - self._start[3] - sum(used) - own)
        return CpuUse(
            wall,
            {name: 100 * u / wall for name, u in zip(self._procs, used, strict=True)},
            100 * own / wall,
            100 * others / wall,
        )


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def log_problems(path: Path) -> tuple[int, list[str]]:
    """Warning, error and traceback lines in a server's output: how many, and the last five."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return 0, []
    words = (" WARNING ", " ERROR ", "Traceback", "Error", '"warning"', '"error"')
    bad = [line for line in lines if any(w in line for w in words)]
    return len(bad), bad[-5:]


# ---- servers and the load generator's sockets ----


def bench_node(folder: Path, name: str, secret: str, **settings: str) -> Server:
    """A Sessionroom node as the benchmarks run it, to be started: the tests' Server, in
    `folder`, with node id `bench-<name>`, logging warnings and worse, and no per-socket or
    per-address limits: every load socket comes from 127.0.0.1, and a benchmark measures
    relaying, not the limits. `settings` (SESSIONROOM_* variables) win over these."""
    folder.mkdir(parents=True, exist_ok=True)
    defaults = {
        "SESSIONROOM_SECRET": secret,
        "SESSIONROOM_HOST": "127.0.0.1",
        "SESSIONROOM_NODE_ID": f"bench-{name.lower()}",
        "SESSIONROOM_LOG_LEVEL": "warning",
        # Far above anything a benchmark sends per socket (a burst of 50, then 50 per second,
        # by default).
        "SESSIONROOM_RATE_BURST": "1000000",
        "SESSIONROOM_RATE_PER_SECOND": "1000000",
        "SESSIONROOM_MAX_SOCKETS_PER_ADDRESS": "0",
        "SESSIONROOM_API_RATE_PER_SECOND": "0",
    }
    return Server(folder, **(defaults | settings))


async def stop_node(server: Server) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within the Server's wait."""
    try:
        await server.stop()
    except TimeoutError:
        await server.close()


def stop_redis(redis: RedisServer) -> None:
    try:
        redis.stop()
    except subprocess.TimeoutExpired:
        redis.kill()


def join_text(keys: KeyRing, room: str, role: Role) -> str:
    """A `join` with a link for `room` signed by `keys`, valid for the next hour."""
    now = int(time.time())
    token = keys.mint(room=room, role=role, name=role.value, not_before=now - 5, expires=now + 3600)
    return json.dumps({"type": "join", "token": token})


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse,
    kind: str,
    where: str,
    errors: ErrorLog,
    within: float,
    *,
    error_fails: bool = False,
) -> dict[str, Any]:
    """The next message of type `kind` from the server `where`; others (lobby, peer_joined,
    ...) are skipped. An `error` goes to `errors`, and with `error_fails` ends the wait."""
    # One deadline for the whole wait: the server's pings would restart a per-receive one.
    async with asyncio.timeout(within):
        while True:
            raw = await ws.receive()
            if raw.type is not aiohttp.WSMsgType.TEXT:
                raise BenchError(f"{where}: socket {raw.type.name} ({raw.extra}) awaiting {kind!r}")
            msg: dict[str, Any] = json.loads(raw.data)
            if msg.get("type") == kind:
                return msg
            if msg.get("type") == "error":
                errors.add(where, msg)
                if error_fails:
                    raise BenchError(f"{where}: {msg.get('code')} awaiting {kind!r}")


def raise_nofile_limit() -> None:
    # Thousands of sockets on each side; the servers inherit the limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def client_session(batch: int) -> aiohttp.ClientSession:
    """A client session for one batch of sockets, from a loopback address of its own
    (127.1.x.y): otherwise tens of thousands of TIME_WAIT entries from earlier batches slow
    connect() down run after run, and a node caps the sockets open from one address."""
    source = f"127.1.{batch // 250}.{batch % 250 + 1}"
    # limit=0: a WebSocket holds its connection, and the default pool stops at 100.
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, local_addr=(source, 0)))
