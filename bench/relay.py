"""Signalling relay benchmark: Sessionroom's /ws against a bare aiohttp WebSocket relay.

Both servers run as separate processes on 127.0.0.1; the load generator is this process
(asyncio + aiohttp). Three phases, each on both servers in the same run, because the
machine is shared and noisy and only same-run ratios are comparable:

  memory      RSS of the server before and after N joined-but-idle sockets (N/2 rooms, the
              client admitted), divided by N.
  latency     on those idle rooms, `signal` messages paced at --rate per second in total;
              one-way latency from a send timestamp carried in `data`, taken on receipt.
  throughput  for each --rooms count, every room's pair joins, the client is admitted,
              then --round-trips `signal` round trips and both leave; each stage runs
              for all rooms at once and is timed on its own.

Run from the project root: `.venv/bin/python -m bench.relay` (see --help).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp

from bench.common import (
    CANDIDATE,
    BenchError,
    CpuMeter,
    CpuUse,
    ErrorLog,
    Targets,
    argument_parser,
    bench_node,
    client_session,
    finished,
    free_port,
    heading,
    join_text,
    log_problems,
    median,
    noisy_warning,
    percentile,
    raise_nofile_limit,
    receive_until,
    rss_kib,
    stop_node,
    table,
    wait_answering,
)
from signaling.core.model import Role
from signaling.tokens import KeyRing

T = TypeVar("T")
WebSocket = aiohttp.ClientWebSocketResponse[Literal[True]]

PROJECT = Path(__file__).resolve().parents[1]
RECEIVE_TIMEOUT = 60.0
TARGET_RATIO = 0.5
TARGET_P99_MS = 10.0
TARGET_KIB_PER_SOCKET = 50.0
SESSIONROOM = "sessionroom"
BASELINE = "baseline"
SERVER = "server"  # the server's entry in a stage's CPU figures

ERRORS = ErrorLog("  ! {where} sent an error: {msg}")


# ---- server processes ----


@dataclass(frozen=True)
class Target:
    """A server under load: where it listens, its process and its log, and the keys that
    sign its links (Sessionroom) or None (the baseline, which takes any id)."""

    name: str
    url: str
    pid: int
    log_path: Path
    keys: KeyRing | None

    def join_text(self, room: str, role: Role) -> str:
        if self.keys is None:
            return json.dumps({"type": "join", "id": f"{room}-{role.value}"})
        return join_text(self.keys, room, role)

    def rss_kib(self) -> int:
        rss = rss_kib(self.pid)
        if rss is None:
            raise BenchError(f"no VmRSS for {self.name}")
        return rss

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter({SERVER: self.pid})


@contextlib.asynccontextmanager
async def sessionroom(tmp: Path) -> AsyncIterator[Target]:
    """A Sessionroom node (in-memory store and bus) in a process of its own."""
    secret = secrets.token_urlsafe(48)
    server = bench_node(tmp / SESSIONROOM, "relay", secret)
    try:
        await server.start()
        assert server.proc is not None
        keys = KeyRing(secret.encode())
        yield Target(SESSIONROOM, server.url, server.proc.pid, server.log_path, keys)
    finally:
        await stop_node(server)


@contextlib.asynccontextmanager
async def baseline(tmp: Path) -> AsyncIterator[Target]:
    """bench/baseline_relay.py in a process of its own."""
    port = free_port()
    log_path = tmp / "baseline.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bench.baseline_relay", "--port", str(port)],
            cwd=PROJECT,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        await wait_answering(f"{url}/healthz", proc, log_path)
        yield Target(BASELINE, url, proc.pid, log_path, None)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# ---- the load generator ----


async def recv_until(ws: WebSocket, kind: str, server: str) -> dict[str, Any]:
    """The next message of this type; others are skipped, errors counted."""
    return await receive_until(ws, kind, server, ERRORS, RECEIVE_TIMEOUT)


def signal_text(to: str, seq: int) -> str:
    data = {"candidate": CANDIDATE, "sdpMid": "0", "sdpMLineIndex": 0, "seq": seq}
    # The send time goes last and as late as possible: receivers subtract it on receipt.
    data["t"] = time.perf_counter()
    return json.dumps({"type": "signal", "to": to, "data": data})


@dataclass
class Pair:
    therapist: WebSocket
    client: WebSocket
    therapist_id: str
    client_id: str


@dataclass
class Load:
    """One server's sockets, as seen from the load generator."""

    server: Target
    http: aiohttp.ClientSession
    connect_slots: asyncio.Semaphore

    async def open(self, join_text: str) -> tuple[WebSocket, str]:
        # Bounded so that connects do not overflow the listen backlog (128) into SYN retries.
        async with self.connect_slots:
            ws = await self.http.ws_connect(f"{self.server.url}/ws")
            await ws.send_str(join_text)
            joined = await recv_until(ws, "joined", self.server.name)
        return ws, str(joined["participant"]["id"])

    async def join_pair(self, texts: tuple[str, str]) -> Pair:
        therapist, tid = await self.open(texts[0])
        try:
            client, cid = await self.open(texts[1])
        except BaseException:
            await therapist.close()
            raise
        return Pair(therapist, client, tid, cid)

    async def admit(self, p: Pair) -> Pair:
        await p.therapist.send_str(json.dumps({"type": "admit", "participant": p.client_id}))
        await recv_until(p.client, "admitted", self.server.name)
        await recv_until(p.therapist, "peer_joined", self.server.name)
        return p

    async def round_trips(self, p: Pair, count: int) -> Pair:
        name = self.server.name
        for seq in range(count):
            await p.therapist.send_str(signal_text(p.client_id, seq))
            await recv_until(p.client, "signal", name)
            await p.client.send_str(signal_text(p.therapist_id, seq))
            await recv_until(p.therapist, "signal", name)
        return p

    async def leave(self, p: Pair) -> Pair:
        for ws in (p.therapist, p.client):
            await ws.send_str('{"type": "leave"}')
        for ws in (p.therapist, p.client):
            await recv_until(ws, "left", self.server.name)
            await ws.close()
        return p

    def join_texts(self, rooms: Iterable[str]) -> list[tuple[str, str]]:
        return [
            (self.server.join_text(r, Role.THERAPIST), self.server.join_text(r, Role.CLIENT))
            for r in rooms
        ]


@dataclass
class Stage:
    done: int
    failed: int
    cpu: CpuUse

    @property
    def seconds(self) -> float:
        return self.cpu.seconds


async def timed_stage(
    server: Target, label: str, work: Sequence[Awaitable[T]]
) -> tuple[Stage, list[T]]:
    meter = server.cpu_meter()
    results = await asyncio.gather(*work, return_exceptions=True)
    cpu = meter.read()
    ok = [r for r in results if not isinstance(r, BaseException)]
    failures = [r for r in results if isinstance(r, BaseException)]
    for f in failures[:3]:
        print(f"  ! {server.name} {label}: {type(f).__name__}: {f}", flush=True)
    return Stage(len(ok), len(failures), cpu), ok


async def close_all(pairs: Iterable[Pair]) -> None:
    await asyncio.gather(
        *(ws.close() for p in pairs for ws in (p.therapist, p.client)), return_exceptions=True
    )


# ---- phase: throughput ----


@dataclass
class Cycle:
    server: str
    rooms: int
    join: Stage
    admit: Stage
    signal: Stage
    leave: Stage
    round_trips: int

    @property
    def joins_per_s(self) -> float:
        return 2 * self.join.done / self.join.seconds

    @property
    def relayed_per_s(self) -> float:
        return 2 * self.round_trips * self.signal.done / self.signal.seconds

    @property
    def server_us_per_signal(self) -> float:
        """Server CPU time per relayed signal: less sensitive to the load generator's limits."""
        server_s = self.signal.cpu.procs[SERVER] * self.signal.cpu.seconds / 100
        return 1e6 * server_s / (2 * self.round_trips * self.signal.done)

    @property
    def sessions_per_s(self) -> float:
        total = sum(s.seconds for s in (self.join, self.admit, self.signal, self.leave))
        return self.leave.done / total

    @property
    def failed(self) -> int:
        return sum(s.failed for s in (self.join, self.admit, self.signal, self.leave))


async def run_cycle(load: Load, rooms: int, tag: str, round_trips: int) -> Cycle:
    name = load.server.name
    texts = load.join_texts(f"{tag}-{i}" for i in range(rooms))  # minted before the clock
    join, pairs = await timed_stage(load.server, "join", [load.join_pair(t) for t in texts])
    admit, pairs = await timed_stage(load.server, "admit", [load.admit(p) for p in pairs])
    signal, pairs = await timed_stage(
        load.server, "signal", [load.round_trips(p, round_trips) for p in pairs]
    )
    leave, done = await timed_stage(load.server, "leave", [load.leave(p) for p in pairs])
    if len(done) < rooms:
        await close_all(pairs)  # whatever failed part-way
    return Cycle(name, rooms, join, admit, signal, leave, round_trips)


# ---- phases: memory and latency, on the same idle rooms ----


@dataclass
class Memory:
    server: str
    sockets: int
    rss_before_kib: int
    rss_after_kib: int

    @property
    def kib_per_socket(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / self.sockets


@dataclass
class Latency:
    server: str
    rate: float
    seconds: float
    samples: list[float]  # milliseconds
    received: int
    cpu: CpuUse

    def percentile(self, q: float) -> float:
        return percentile(self.samples, q)

    @property
    def achieved_rate(self) -> float:
        return self.received / self.seconds


async def open_idle(load: Load, pairs: int) -> list[Pair]:
    texts = load.join_texts(f"idle-{i}" for i in range(pairs))
    stage, joined = await timed_stage(load.server, "idle join", [load.join_pair(t) for t in texts])
    stage, admitted = await timed_stage(load.server, "idle admit", [load.admit(p) for p in joined])
    if stage.failed or len(admitted) < pairs:
        raise BenchError(f"{load.server.name}: only {len(admitted)} of {pairs} idle rooms opened")
    return admitted


async def measure_memory(load: Load, pairs: int, settle: float) -> tuple[Memory, list[Pair]]:
    await asyncio.sleep(settle)
    before = load.server.rss_kib()
    opened = await open_idle(load, pairs)
    # Let the server finish its writes and the allocator settle before reading RSS.
    await asyncio.sleep(settle)
    after = load.server.rss_kib()
    return Memory(load.server.name, 2 * pairs, before, after), opened


async def read_signals(
    ws: WebSocket,
    server: str,
    samples: list[float],
    window: list[float],
    answer: Callable[[dict[str, Any]], Awaitable[None]] | None,
) -> None:
    """Until the socket closes: record each signal's one-way latency, answer if asked."""
    while True:
        raw = await ws.receive()
        if raw.type is not aiohttp.WSMsgType.TEXT:
            return
        now = time.perf_counter()
        msg: dict[str, Any] = json.loads(raw.data)
        kind = msg.get("type")
        if kind == "signal":
            if window[0] <= now <= window[1]:
                samples.append(1000 * (now - float(msg["data"]["t"])))
            if answer is not None:
                await answer(msg)
        elif kind == "error":
            ERRORS.add(server, msg)


async def measure_latency(
    load: Load, pairs: list[Pair], rate: float, duration: float, warmup: float
) -> Latency:
    """Therapists send at rate/2 in total, round robin over the rooms; each client answers
    at once, so `rate` signals per second cross the server."""
    name = load.server.name
    samples: list[float] = []
    window = [math.inf, math.inf]  # perf_counter interval whose receipts count

    def answerer(p: Pair) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def answer(msg: dict[str, Any]) -> None:
            await p.client.send_str(signal_text(p.therapist_id, int(msg["data"]["seq"])))

        return answer

    readers = [
        asyncio.create_task(read_signals(p.therapist, name, samples, window, None)) for p in pairs
    ] + [
        asyncio.create_task(read_signals(p.client, name, samples, window, answerer(p)))
        for p in pairs
    ]
    sends_per_s = rate / 2
    start = time.perf_counter()
    window[:] = [start + warmup, start + warmup + duration]
    meter = load.server.cpu_meter()
    sent = 0
    while (elapsed := time.perf_counter() - start) < warmup + duration:
        # Catch up on whatever is due: sleep granularity is about a millisecond.
        due = int(elapsed * sends_per_s)
        while sent < due:
            p = pairs[sent % len(pairs)]
            await p.therapist.send_str(signal_text(p.client_id, sent))
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.5)  # the last answers
    cpu = meter.read()
    # The readers own the sockets' receive side: they end when `leave` closes each socket.
    for p in pairs:
        for ws in (p.therapist, p.client):
            await ws.send_str('{"type": "leave"}')
    _, pending = await asyncio.wait(readers, timeout=RECEIVE_TIMEOUT)
    for task in pending:
        task.cancel()
    if pending:
        print(f"  ! {name}: {len(pending)} sockets not closed after leave", flush=True)
    await close_all(pairs)
    return Latency(name, rate, duration, samples, len(samples), cpu)


# ---- the run ----


@dataclass
class Results:
    cycles: list[Cycle] = field(default_factory=list)
    memory: dict[str, Memory] = field(default_factory=dict)
    latency: dict[str, Latency] = field(default_factory=dict)

    def values(self, server: str, rooms: int, metric: Callable[[Cycle], float]) -> list[float]:
        """One value per run, in run order."""
        return [metric(c) for c in self.cycles if c.server == server and c.rooms == rooms]

    def median(self, server: str, rooms: int, metric: Callable[[Cycle], float]) -> float:
        return median(self.values(server, rooms, metric))

    def paired_ratio(self, rooms: int, metric: Callable[[Cycle], float]) -> float:
        """Median over runs of Sessionroom / baseline, each pair measured back to back."""
        pairs = zip(
            self.values(SESSIONROOM, rooms, metric),
            self.values(BASELINE, rooms, metric),
            strict=True,
        )
        return median(a / b for a, b in pairs if b)


async def run(args: argparse.Namespace, tmp: Path) -> tuple[Results, dict[str, Path]]:
    """Start both servers, measure, stop them; the results, and each server's log."""
    async with sessionroom(tmp) as sr, baseline(tmp) as bl:
        servers = {SESSIONROOM: sr, BASELINE: bl}
        results = await measure(args, servers)
    return results, {name: s.log_path for name, s in servers.items()}


async def measure(args: argparse.Namespace, servers: dict[str, Target]) -> Results:
    results = Results()
    batches = itertools.count()
    slots = asyncio.Semaphore(args.connect_concurrency)
    for server in servers.values():
        async with client_session(next(batches)) as http:
            # Warm up: imports done lazily, first-use code paths, allocator arenas.
            await run_cycle(Load(server, http, slots), 20, "warm", args.round_trips)

    idle_pairs = args.idle_sockets // 2
    for name, server in servers.items():
        async with client_session(next(batches)) as http:
            load = Load(server, http, slots)
            print(f"[{name}] memory: {2 * idle_pairs} idle sockets", flush=True)
            mem, pairs = await measure_memory(load, idle_pairs, args.settle)
            results.memory[name] = mem
            print(f"  {mem.kib_per_socket:.1f} KiB per idle socket", flush=True)
            print(f"[{name}] latency: {args.rate:g} signals/s for {args.duration:g} s", flush=True)
            lat = await measure_latency(load, pairs, args.rate, args.duration, args.warmup)
            results.latency[name] = lat
            print(
                f"  p50 {lat.percentile(0.5):.2f} ms, p99 {lat.percentile(0.99):.2f} ms,"
                f" {lat.achieved_rate:,.0f}/s received; CPU: server {lat.cpu.procs[SERVER]:.0f}%,"
                f" others {lat.cpu.others:.0f}%",
                flush=True,
            )

    order = list(servers)
    for rep in range(args.repeat):
        for rooms in args.rooms:
            # Alternate which server goes first, so drift in the machine's load is shared.
            for name in order if rep % 2 == 0 else order[::-1]:
                async with client_session(next(batches)) as http:
                    load = Load(servers[name], http, slots)
                    c = await run_cycle(load, rooms, f"t{rooms}x{rep}", args.round_trips)
                results.cycles.append(c)
                print(
                    f"[{name}] {rooms} rooms, run {rep + 1}: {c.joins_per_s:,.0f} joins/s,"
                    f" {c.relayed_per_s:,.0f} signals/s; signal stage CPU: server"
                    f" {c.signal.cpu.procs[SERVER]:.0f}% ({c.server_us_per_signal:.0f} us/signal),"
                    f" load generator {c.signal.cpu.load_generator:.0f}%,"
                    f" others {c.signal.cpu.others:.0f}%"
                    + (f", {c.failed} FAILED" if c.failed else ""),
                    flush=True,
                )
    return results


# ---- report ----


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def report(args: argparse.Namespace, r: Results) -> bool:
    """Print the tables and the targets; True if every target is met."""
    sr, bl = SESSIONROOM, BASELINE
    print()
    print(heading("Signalling benchmark") + f", aiohttp {aiohttp.__version__}")
    print(
        f"Throughput: medians of {args.repeat} run(s); ratio = median of the per-run ratios"
        f" (each pair back to back); {args.round_trips} signal round trips per room."
    )
    metrics: list[tuple[str, Callable[[Cycle], float], str]] = [
        ("joins/s", lambda c: c.joins_per_s, ",.0f"),
        ("signals relayed/s", lambda c: c.relayed_per_s, ",.0f"),
        ("sessions/s, join to leave", lambda c: c.sessions_per_s, ",.0f"),
        ("server CPU us per signal", lambda c: c.server_us_per_signal, ".0f"),
        ("server CPU % (signal stage)", lambda c: c.signal.cpu.procs[SERVER], ".0f"),
        ("load gen CPU % (signal stage)", lambda c: c.signal.cpu.load_generator, ".0f"),
        ("other processes CPU % (signal stage)", lambda c: c.signal.cpu.others, ".0f"),
    ]
    rows: list[tuple[str, str, str, str]] = []
    for rooms in args.rooms:
        for label, fn, fmt in metrics:
            a, b = r.median(sr, rooms, fn), r.median(bl, rooms, fn)
            # Other processes' load is the machine's noise, not a property of either server.
            paired = "" if label.startswith("other") else f"{r.paired_ratio(rooms, fn):.2f}"
            rows.append((f"{rooms} rooms: {label}", f"{a:{fmt}}", f"{b:{fmt}}", paired))
    table(("figure", sr, bl, "ratio"), rows)
    for rooms in args.rooms:
        spread = [
            f"{name} " + ", ".join(f"{v:,.0f}" for v in r.values(name, rooms, metrics[1][1]))
            for name in (sr, bl)
        ]
        print(f"signals relayed/s per run, {rooms} rooms: {'; '.join(spread)}")

    print()
    ls, lb = r.latency[sr], r.latency[bl]
    ms, mb = r.memory[sr], r.memory[bl]
    print(
        f"Latency: {args.rate:g} signals/s in total over the {ms.sockets // 2} idle rooms,"
        f" {args.duration:g} s measured; one-way, from send to receipt. Memory: RSS growth"
        f" / {ms.sockets} joined idle sockets."
    )
    rows = []
    for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
        a, b = ls.percentile(q), lb.percentile(q)
        rows.append((f"signal latency {label}, ms", f"{a:.2f}", f"{b:.2f}", _ratio(a, b)))
    a, b = ls.achieved_rate, lb.achieved_rate
    rows.append(("signals/s received", f"{a:,.0f}", f"{b:,.0f}", _ratio(a, b)))
    a, b = ls.cpu.procs[SERVER], lb.cpu.procs[SERVER]
    rows.append(("server CPU %", f"{a:.0f}", f"{b:.0f}", _ratio(a, b)))
    a, b = ls.cpu.others, lb.cpu.others
    rows.append(("other processes CPU %", f"{a:.0f}", f"{b:.0f}", ""))
    a, b = ms.kib_per_socket, mb.kib_per_socket
    rows.append(("memory per idle socket, KiB", f"{a:.1f}", f"{b:.1f}", _ratio(a, b)))
    rows.append(
        (
            f"server RSS before/after {ms.sockets} idle sockets, MiB",
            f"{ms.rss_before_kib / 1024:.0f}/{ms.rss_after_kib / 1024:.0f}",
            f"{mb.rss_before_kib / 1024:.0f}/{mb.rss_after_kib / 1024:.0f}",
            "",
        )
    )
    table(("figure", sr, bl, "ratio"), rows)

    print()
    targets = Targets()
    for rooms in args.rooms:
        ratio = r.paired_ratio(rooms, metrics[1][1])
        targets.check(
            ratio >= TARGET_RATIO,
            f"relay throughput >= {TARGET_RATIO:.0%} of baseline, {rooms} rooms: {ratio:.0%}",
        )
    p99 = ls.percentile(0.99)
    targets.check(
        p99 <= TARGET_P99_MS,
        f"p99 relay latency <= {TARGET_P99_MS:g} ms at {args.rate:g} signals/s: {p99:.2f} ms"
        f" ({ls.achieved_rate:,.0f}/s received)",
    )
    kib = ms.kib_per_socket
    targets.check(
        kib <= TARGET_KIB_PER_SOCKET,
        f"server memory <= {TARGET_KIB_PER_SOCKET:g} KiB per idle socket: {kib:.1f} KiB",
    )
    others = [c.signal.cpu.others for c in r.cycles] + [x.cpu.others for x in r.latency.values()]
    noisy_warning(others, "signal stages")
    failed = sum(c.failed for c in r.cycles)
    print(f"Errors from the servers: {dict(ERRORS.counts) or 'none'}; failed room tasks: {failed}")
    return targets.met


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argument_parser("bench.relay", __doc__)

    def counts(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError("room counts must be positive")
        return values

    add = parser.add_argument
    add("--rooms", type=counts, default=[500, 2000], help="room counts, in order (500,2000)")
    add("--round-trips", type=int, default=10, help="signal round trips per room (10)")
    add("--repeat", type=int, default=5, help="throughput runs per room count; medians (5)")
    add("--idle-sockets", type=int, default=2000, help="idle sockets for memory/latency (2000)")
    add("--rate", type=float, default=1000.0, help="signals per second, latency phase (1000)")
    add("--duration", type=float, default=20.0, help="measured seconds, latency phase (20)")
    add("--warmup", type=float, default=2.0, help="unmeasured seconds before that (2)")
    add("--settle", type=float, default=2.0, help="seconds before each RSS reading (2)")
    add("--connect-concurrency", type=int, default=100, help="connects in flight (100)")
    args = parser.parse_args(argv)
    if args.idle_sockets < 2 or args.repeat < 1 or args.round_trips < 1 or args.rate <= 0:
        parser.error("--idle-sockets >= 2, --repeat >= 1, --round-trips >= 1, --rate > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        results, log_paths = asyncio.run(run(args, Path(tmp)))
        logs = {name: log_problems(path) for name, path in log_paths.items()}
    met = report(args, results)
    for name, (count, last) in logs.items():
        if count:
            print(f"{name} logged {count} warning/error line(s); last ones:", *last, sep="\n  ")
    finished(met, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
