"""Multi-node benchmark: Sessionroom nodes sharing rooms through Redis.

One private redis-server (a Unix socket in a temporary folder, no TCP, no persistence) and
three real `python -m signaling.cli serve` processes on 127.0.0.1: nodes A and B on that
Redis (distinct node ids, one key prefix), and node M with no Redis (in-memory store and
bus, one process: the reference). This process is the load generator; every socket's
receipts are timed with one monotonic clock (time.perf_counter), so latency is one-way.

  latency  rooms held open for the whole phase, a therapist and a client in each, the
           client admitted. In each round one placement gets --rate `signal`s per second in
           total for --duration seconds (after --warmup unmeasured ones): every room's
           therapist and client send to each other, round robin over the rooms, each message
           carrying a sequence number and its send time. Placements:
             memory  both on M (no Redis)
             same    both on A (through Redis, the peer on the same node)
             split   both on one node, half of the rooms on A and half on B: the same load
                     per node as `cross`, the peer still on the same node
             cross   therapist on A, client on B
           The placements alternate round by round (the order reversed every other round),
           because the two shared cores are noisy and only same-run figures compare.
  count    --messages signals (--count-rate per second) across nodes, on the `cross` rooms;
           every receipt is checked by sequence number per room and direction: sent,
           received, lost, duplicated, out of order.
  joins    --join-rooms rooms; per room the therapist joins, then the client (into the
           waiting room), every room at once with --connect-concurrency joins in flight.
           Against one node (A), two nodes (therapist on one, client on the other, A and B
           alternating) and M; --repeat times, alternating; joins/s = joins / wall time.
           Everyone leaves (untimed, also bounded) and the nodes rest --settle seconds
           before the next run.
  burst    not a figure: --burst-joins therapists join node A with --burst-in-flight joins
           in flight, and the answers are counted (joined, or the error code).

Every socket of the latency and count phases counts each `signal` it receives; each node's
/metrics counters are read at the end and compared with what was sent to it.

Everything is on 127.0.0.1: run it inside a loopback-only network namespace, from the
project root:

  unshare --net -- bash -c 'ip link set lo up && .venv/bin/python -m bench.multinode'
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import itertools
import json
import re
import secrets
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from bench.common import (
    CANDIDATE,
    BenchError,
    CpuMeter,
    CpuUse,
    ErrorLog,
    RedisServer,
    Server,
    Targets,
    argument_parser,
    bench_node,
    client_session,
    finished,
    heading,
    join_text,
    log_problems,
    median,
    noisy_warning,
    percentile,
    raise_nofile_limit,
    receive_until,
    stop_node,
    stop_redis,
    table,
)
from signaling.core.model import Role
from signaling.tokens import KeyRing

WebSocket = aiohttp.ClientWebSocketResponse[Literal[True]]

RECEIVE_TIMEOUT = 30.0
# Targets, from the issue.
TARGET_P99_RATIO = 2.0
TARGET_MESSAGES = 100_000
PLACEMENTS = ("memory", "same", "split", "cross")
PLACEMENT_LABEL = {
    "memory": "in-memory node M",
    "same": "same node (A)",
    "split": "same node, split A/B",
    "cross": "cross-node A-B",
}
JOIN_CONFIGS = ("one", "two", "memory")
JOIN_LABEL = {"one": "one node (A)", "two": "two nodes (A+B)", "memory": "in-memory node M"}


# ---- processes ----

# The processes measured: name in the figures -> pid.
Pids = Mapping[str, int]


@dataclass
class Node:
    name: str  # A, B or M
    server: Server
    keys: KeyRing
    signals_sent: int = 0  # signal messages this load generator sent to the node

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def join_text(self, room: str, role: Role) -> str:
        return join_text(self.keys, room, role)


_COUNTER = re.compile(r'^(sessionroom_\w+_total)\{\w+="([^"]*)"\} (\d+)$', re.M)


async def read_counters(http: aiohttp.ClientSession, node: Node) -> dict[str, int]:
    """The node's Prometheus counters, as {"messages_total:signal": n, ...}."""
    async with http.get(f"{node.url}/metrics") as resp:
        text = await resp.text()
    return {
        f"{m.group(1).removeprefix('sessionroom_')}:{m.group(2)}": int(m.group(3))
        for m in _COUNTER.finditer(text)
    }


# ---- sockets and message accounting ----


@dataclass
class Tally:
    """One stretch of signals (a latency round, the count phase): what was sent, and what
    arrived, by sequence number."""

    name: str
    sent: int = 0
    unsent: int = 0  # due, but the sender's socket had been closed by its node
    received: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    samples: list[float] = field(default_factory=list)  # one-way milliseconds, measured only
    cpu: CpuUse | None = None
    seconds: float = 0.0  # from the first send to the last
    drain_seconds: float = 0.0  # from the last send until every message was in, or gave up
    drained: bool = False  # the stretch is over: what arrives now is late
    late: int = 0  # arrived after the stretch stopped waiting for it
    # By receiving participant: sent to it, and received by it.
    expected: Counter[str] = field(default_factory=Counter)
    got: Counter[str] = field(default_factory=Counter)
    # Lost to a socket that its node had closed, as counted at the end of the phase.
    lost_closed: int = 0

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def lost_open(self) -> int:
        """Lost although the receiving socket stayed open: silently."""
        return self.lost - self.lost_closed

    def count_lost_closed(self, closed: set[str]) -> None:
        self.lost_closed = sum(max(0, self.expected[i] - self.got[i]) for i in closed)

    def percentile(self, q: float) -> float:
        return percentile(self.samples, q)


ERRORS = ErrorLog("  ! node {where}: {msg}")


@dataclass
class Side:
    """One participant's socket, read by one task from admission until it closes."""

    ws: WebSocket
    id: str
    node: Node
    seq: int = 0  # the next sequence number this side sends
    # Sequence numbers received from the peer; the highest so far, for ordering.
    seen: set[int] = field(default_factory=set)
    highest: int = -1
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Pair:
    room: str
    therapist: Side
    client: Side


async def recv_until(ws: WebSocket, kind: str, where: str) -> dict[str, Any]:
    """The next message of this type; others are skipped, and an error ends the wait."""
    return await receive_until(ws, kind, where, ERRORS, RECEIVE_TIMEOUT, error_fails=True)


class Load:
    """The load generator's sockets: one client session per batch (a fresh loopback source
    address, so that earlier batches' TIME_WAIT entries do not slow connects down)."""

    def __init__(self, concurrency: int) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self._batches = itertools.count()
        self.tallies: dict[str, Tally] = {}

    def session(self) -> aiohttp.ClientSession:
        return client_session(next(self._batches))

    async def open(self, http: aiohttp.ClientSession, node: Node, text: str) -> Side:
        # Bounded so that connects do not overflow the listen backlog (128) into SYN retries.
        async with self.slots:
            ws = await http.ws_connect(f"{node.url}/ws")
            try:
                await ws.send_str(text)
                joined = await recv_until(ws, "joined", node.name)
            except BaseException:
                await ws.close()
                raise
        return Side(ws, str(joined["participant"]["id"]), node)

    async def join_pair(
        self,
        http: aiohttp.ClientSession,
        room: str,
        texts: tuple[str, str],
        nodes: tuple[Node, Node],
    ) -> Pair:
        therapist = await self.open(http, nodes[0], texts[0])
        try:
            client = await self.open(http, nodes[1], texts[1])
        except BaseException:
            await therapist.ws.close()
            raise
        return Pair(room, therapist, client)

    async def admit(self, p: Pair) -> Pair:
        async with self.slots:
            admit = json.dumps({"type": "admit", "participant": p.client.id})
            await p.therapist.ws.send_str(admit)
            # The therapist first: a refused admit is answered with an error there.
            await recv_until(p.therapist.ws, "peer_joined", p.therapist.node.name)
            await recv_until(p.client.ws, "admitted", p.client.node.name)
        return p

    async def leave(self, p: Pair) -> None:
        # Bounded like joins: a node refuses work when too much of it arrives at once.
        async with self.slots:
            for side in (p.therapist, p.client):
                await side.ws.send_str('{"type": "leave"}')
            for side in (p.therapist, p.client):
                await recv_until(side.ws, "left", side.node.name)
                await side.ws.close()

    async def leave_read(self, p: Pair) -> None:
        """`leave` for sockets whose reader task sees the `left`."""
        async with self.slots:
            for side in (p.therapist, p.client):
                if not side.ws.closed:
                    await side.ws.send_str('{"type": "leave"}')
            async with asyncio.timeout(RECEIVE_TIMEOUT):
                for side in (p.therapist, p.client):
                    await side.closed.wait()

    # ---- signals ----

    async def read(self, side: Side) -> None:
        """Until the socket closes: count every signal by sequence number, time it."""
        try:
            while True:
                raw = await side.ws.receive()
                if raw.type is not aiohttp.WSMsgType.TEXT:
                    return
                now = time.perf_counter()
                msg: dict[str, Any] = json.loads(raw.data)
                kind = msg.get("type")
                if kind == "signal":
                    data = msg["data"]
                    tally = self.tallies[data["stretch"]]
                    seq = int(data["seq"])
                    if seq in side.seen:
                        tally.duplicates += 1
                        continue
                    side.seen.add(seq)
                    tally.received += 1
                    tally.got[side.id] += 1
                    tally.late += tally.drained
                    if seq < side.highest:
                        tally.out_of_order += 1
                    side.highest = max(side.highest, seq)
                    if data["measured"]:
                        tally.samples.append(1000 * (now - float(data["t"])))
                elif kind == "left":
                    return
                elif kind == "error":
                    ERRORS.add(side.node.name, msg)
        finally:
            side.closed.set()

    async def send_signal(self, sender: Side, to: Side, tally: Tally, measured: bool) -> None:
        data: dict[str, Any] = {
            "kind": "bench",
            "candidate": CANDIDATE,
            "stretch": tally.name,
            "seq": sender.seq,
            "measured": measured,
        }
        sender.seq += 1
        if sender.ws.closed:
            tally.unsent += 1  # a node closed this socket (the error is counted as it came)
            return
        # The send time goes last and as late as possible: receivers subtract it on receipt.
        data["t"] = time.perf_counter()
        try:
            await sender.ws.send_str(json.dumps({"type": "signal", "to": to.id, "data": data}))
        except (ConnectionError, aiohttp.ClientError):
            tally.unsent += 1
            return
        tally.sent += 1
        tally.expected[to.id] += 1
        sender.node.signals_sent += 1

    async def stream(
        self,
        pairs: Sequence[Pair],
        tally: Tally,
        rate: float,
        total: int,
        warmup: float,
        procs: Pids,
        drain_timeout: float,
    ) -> Tally:
        """`total` signals at `rate` per second, alternately therapist to client and client
        to therapist, round robin over the pairs; then wait for every one to arrive."""
        self.tallies[tally.name] = tally
        # No collection in this process while it times messages: a full pass over its
        # sockets would show up as relay latency. Collected after the stretch instead.
        gc.disable()
        try:
            meter = CpuMeter(procs)
            start = time.perf_counter()
            k = 0
            while k < total:
                # Catch up on whatever is due: sleep granularity is about a millisecond.
                elapsed = time.perf_counter() - start
                due = min(total, int(elapsed * rate) + 1)
                while k < due:
                    p = pairs[(k // 2) % len(pairs)]
                    sender, to = (p.therapist, p.client) if k % 2 == 0 else (p.client, p.therapist)
                    await self.send_signal(sender, to, tally, elapsed >= warmup)
                    k += 1
                await asyncio.sleep(0.001)
            tally.seconds = time.perf_counter() - start
            last_send = time.perf_counter()
            while tally.received < tally.sent:
                if time.perf_counter() - last_send > drain_timeout:
                    break
                await asyncio.sleep(0.002)
            tally.drain_seconds = time.perf_counter() - last_send
            tally.drained = True
            tally.cpu = meter.read()
        finally:
            gc.enable()
        gc.collect()
        return tally

    async def quiesce(self, seconds: float) -> None:
        """Wait for late messages of every stretch, up to `seconds`."""
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            if all(t.received >= t.sent for t in self.tallies.values()):
                return
            await asyncio.sleep(0.05)


# ---- phases ----


@dataclass
class Results:
    rounds: list[tuple[int, str, Tally]] = field(default_factory=list)  # round, placement
    count: Tally | None = None
    joins: list[JoinRun] = field(default_factory=list)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    sent_to: dict[str, int] = field(default_factory=dict)
    burst: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    idle: list[tuple[str, CpuUse]] = field(default_factory=list)
    closed_sockets: int = 0  # of the latency and count phases, closed by a node before the end

    def tallies(self, placement: str) -> list[Tally]:
        return [t for _, pl, t in self.rounds if pl == placement]

    def pooled(self, placement: str) -> list[float]:
        return [s for t in self.tallies(placement) for s in t.samples]

    def pooled_ratio(self, a: str, b: str, q: float) -> float:
        return percentile(self.pooled(a), q) / percentile(self.pooled(b), q)

    def paired_ratio(self, a: str, b: str, q: float) -> float:
        """Median over rounds of a's percentile / b's, each round's pair back to back."""
        ratios = [
            x.percentile(q) / y.percentile(q)
            for x, y in zip(self.tallies(a), self.tallies(b), strict=True)
            if y.percentile(q) > 0
        ]
        return median(ratios)


@dataclass
class JoinRun:
    config: str
    rep: int
    rooms: int
    done: int
    failed: int
    cpu: CpuUse

    @property
    def joins_per_s(self) -> float:
        return 2 * self.done / self.cpu.seconds

    @property
    def node_ms_per_join(self) -> float:
        """CPU time of every node together, per join."""
        busy = sum(v for k, v in self.cpu.procs.items() if k.startswith("node"))
        return 10 * busy * self.cpu.seconds / max(1, 2 * self.done)


def placement_nodes(placement: str, nodes: dict[str, Node], i: int) -> tuple[Node, Node]:
    a, b, m = nodes["A"], nodes["B"], nodes["M"]
    if placement == "memory":
        return m, m
    if placement == "same":
        return a, a
    if placement == "split":
        return (a, a) if i % 2 == 0 else (b, b)
    return a, b  # cross: therapist on A, client on B


async def open_rooms(
    load: Load,
    http: aiohttp.ClientSession,
    tag: str,
    rooms: int,
    nodes: Callable[[int], tuple[Node, Node]],
) -> list[Pair]:
    plan = [(f"{tag}-{i}", nodes(i)) for i in range(rooms)]
    texts = [(t.join_text(r, Role.THERAPIST), c.join_text(r, Role.CLIENT)) for r, (t, c) in plan]
    pairs = await asyncio.gather(
        *(load.join_pair(http, r, tx, n) for (r, n), tx in zip(plan, texts, strict=True))
    )
    return list(await asyncio.gather(*(load.admit(p) for p in pairs)))


async def close_pairs(
    load: Load, pairs: Iterable[Pair], readers: Sequence[asyncio.Task[None]]
) -> None:
    pairs = list(pairs)
    # The readers own the receive side: they end on `left`, then the socket is closed.
    left = await asyncio.gather(*(load.leave_read(p) for p in pairs), return_exceptions=True)
    failed = [x for x in left if isinstance(x, BaseException)]
    if failed:
        print(f"  ! {len(failed)} rooms did not leave cleanly: {failed[0]!r}", flush=True)
    for task in readers:
        task.cancel()
    await asyncio.gather(
        *(s.ws.close() for p in pairs for s in (p.therapist, p.client)), return_exceptions=True
    )


async def signal_phases(
    args: argparse.Namespace, nodes: dict[str, Node], procs: Pids, results: Results
) -> None:
    load = Load(args.connect_concurrency)
    async with load.session() as http:
        print(f"opening {args.pairs} rooms for each placement", flush=True)
        placed: dict[str, list[Pair]] = {}
        for pl in PLACEMENTS:
            placed[pl] = await open_rooms(
                load, http, f"lat-{pl}", args.pairs, functools.partial(placement_nodes, pl, nodes)
            )
        readers = [
            asyncio.create_task(load.read(side))
            for pairs in placed.values()
            for p in pairs
            for side in (p.therapist, p.client)
        ]
        try:
            # Warm up every placement: first-use code paths, Redis connections in the pools.
            for pl in PLACEMENTS:
                warm = Tally(f"warm-{pl}")
                await load.stream(placed[pl], warm, args.rate, int(args.rate), 1e9, procs, 5.0)

            per_round = int(args.rate * (args.warmup + args.duration))
            for rnd in range(args.rounds):
                order = PLACEMENTS if rnd % 2 == 0 else PLACEMENTS[::-1]
                for pl in order:
                    t = await load.stream(
                        placed[pl], Tally(f"r{rnd}-{pl}"), args.rate, per_round,
                        args.warmup, procs, 5.0,
                    )  # fmt: skip
                    results.rounds.append((rnd, pl, t))
                    print_round(rnd, pl, t)

            print(
                f"count: {args.messages:,} signals across nodes at {args.count_rate:,.0f}/s",
                flush=True,
            )
            t = await load.stream(
                placed["cross"], Tally("count"), args.count_rate, args.messages,
                args.warmup, procs, 30.0,
            )  # fmt: skip
            results.count = t
            print_round(None, "cross", t)
            # Whatever is still on its way counts as late, not lost.
            await load.quiesce(30.0)
            every = [s for ps in placed.values() for p in ps for s in (p.therapist, p.client)]
            closed = {s.id for s in every if s.ws.closed or s.closed.is_set()}
            results.closed_sockets = len(closed)
            for tally in load.tallies.values():
                tally.count_lost_closed(closed)
        finally:
            await close_pairs(load, (p for ps in placed.values() for p in ps), readers)


async def join_phase(
    args: argparse.Namespace, nodes: dict[str, Node], procs: Pids, results: Results
) -> None:
    load = Load(args.connect_concurrency)
    a, b, m = nodes["A"], nodes["B"], nodes["M"]

    def assign(config: str, i: int) -> tuple[Node, Node]:
        if config == "one":
            return a, a
        if config == "two":
            return (a, b) if i % 2 == 0 else (b, a)
        return m, m

    async def run(config: str, rep: int, rooms: int, tag: str) -> JoinRun:
        async with load.session() as http:
            plan = [(f"{tag}-{i}", assign(config, i)) for i in range(rooms)]
            texts = [
                (t.join_text(r, Role.THERAPIST), c.join_text(r, Role.CLIENT)) for r, (t, c) in plan
            ]  # minted before the clock
            meter = CpuMeter(procs)
            got = await asyncio.gather(
                *(load.join_pair(http, r, tx, n) for (r, n), tx in zip(plan, texts, strict=True)),
                return_exceptions=True,
            )
            cpu = meter.read()
            pairs = [p for p in got if isinstance(p, Pair)]
            failures = [e for e in got if isinstance(e, BaseException)]
            for e in failures[:3]:
                print(f"  ! join {config}: {type(e).__name__}: {e}", flush=True)
            left = await asyncio.gather(*(load.leave(p) for p in pairs), return_exceptions=True)
            if any(isinstance(x, BaseException) for x in left):
                await asyncio.gather(
                    *(s.ws.close() for p in pairs for s in (p.therapist, p.client)),
                    return_exceptions=True,
                )
            await asyncio.sleep(args.settle)  # let the nodes finish what the leaves started
            return JoinRun(config, rep, rooms, len(pairs), len(failures), cpu)

    async def burst_one(http: aiohttp.ClientSession, slots: asyncio.Semaphore, text: str) -> str:
        """One therapist join: "joined", or the error code it was refused with."""
        async with slots:
            ws = await http.ws_connect(f"{a.url}/ws")
            try:
                await ws.send_str(text)
                async with asyncio.timeout(RECEIVE_TIMEOUT):
                    msg = json.loads((await ws.receive()).data)
                if msg.get("type") == "joined":
                    await ws.send_str('{"type": "leave"}')
                    try:
                        await recv_until(ws, "left", a.name)
                    except BenchError as e:
                        return f"joined, then leave failed ({e})"
                    return "joined"
                return str(msg.get("code", msg.get("type")))
            finally:
                await ws.close()

    for config in JOIN_CONFIGS:
        await run(config, -1, 50, f"join-warm-{config}")
    for rep in range(args.repeat):
        order = JOIN_CONFIGS if rep % 2 == 0 else JOIN_CONFIGS[::-1]
        for config in order:
            j = await run(config, rep, args.join_rooms, f"join-{rep}-{config}")
            results.joins.append(j)
            print(
                f"[joins] {JOIN_LABEL[config]}, run {rep + 1}: {j.joins_per_s:,.0f} joins/s"
                f" ({2 * j.done} in {j.cpu.seconds:.2f} s); CPU {cpu_text(j.cpu)}"
                + (f"; {j.failed} rooms FAILED" if j.failed else ""),
                flush=True,
            )
    results.errors = Counter(ERRORS.counts)  # the burst's own are counted apart
    if args.burst_joins:
        # Not a figure: whether node A refuses joins when many arrive at once.
        slots = asyncio.Semaphore(args.burst_in_flight)
        texts = [a.join_text(f"burst-{i}", Role.THERAPIST) for i in range(args.burst_joins)]
        async with load.session() as http:
            got = await asyncio.gather(
                *(burst_one(http, slots, t) for t in texts), return_exceptions=True
            )
        results.burst = Counter(x if isinstance(x, str) else type(x).__name__ for x in got)
        print(
            f"[burst] {args.burst_joins} therapist joins on node A, {args.burst_in_flight} in"
            f" flight: {dict(results.burst)}",
            flush=True,
        )


async def idle_cpu(procs: Pids, when: str) -> tuple[str, CpuUse]:
    """CPU over a few seconds with no traffic at all: a node busy now is doing work that
    nobody asked for."""
    await asyncio.sleep(1.0)
    meter = CpuMeter(procs)
    await asyncio.sleep(3.0)
    cpu = meter.read()
    print(f"[idle] {when}, 3 s without traffic: CPU {cpu_text(cpu)}", flush=True)
    return when, cpu


def cpu_text(cpu: CpuUse) -> str:
    parts = [f"{name} {v:.0f}%" for name, v in cpu.procs.items()]
    return ", ".join([*parts, f"load gen {cpu.load_generator:.0f}%", f"others {cpu.others:.0f}%"])


def print_round(rnd: int | None, placement: str, t: Tally) -> None:
    head = f"[{PLACEMENT_LABEL[placement]}]" + (f" round {rnd + 1}" if rnd is not None else "")
    assert t.cpu is not None
    print(
        f"{head}: p50 {t.percentile(0.5):.2f} ms, p99 {t.percentile(0.99):.2f} ms,"
        f" max {t.percentile(1.0):.1f} ms; sent {t.sent:,}, received {t.received:,},"
        f" lost {t.lost}, dup {t.duplicates}, out of order {t.out_of_order}"
        f" ({t.sent / t.seconds:,.0f}/s); CPU {cpu_text(t.cpu)}",
        flush=True,
    )


async def run(args: argparse.Namespace, tmp: Path) -> Results:
    results = Results()
    secret = secrets.token_urlsafe(48)
    keys = KeyRing(secret.encode())
    redis = RedisServer(tmp / "redis")
    prefix = f"bench-{secrets.token_hex(3)}"
    on_redis = {"SESSIONROOM_REDIS_URL": redis.url, "SESSIONROOM_REDIS_PREFIX": prefix}
    nodes = {
        name: Node(name, bench_node(tmp / f"node-{name}", name, secret, **settings), keys)
        for name, settings in (("A", on_redis), ("B", on_redis), ("M", {}))
    }
    try:
        redis.start()
        await asyncio.gather(*(n.server.start() for n in nodes.values()))
        async with aiohttp.ClientSession() as http:
            before = {name: await read_counters(http, n) for name, n in nodes.items()}
        assert redis.proc is not None
        procs = {f"node {n.name}": n.pid for n in nodes.values()} | {"redis": redis.proc.pid}

        if "signals" in args.phases:
            await signal_phases(args, nodes, procs, results)
            results.idle.append(await idle_cpu(procs, "after the signal phases"))
        if "joins" in args.phases:
            await join_phase(args, nodes, procs, results)
            results.idle.append(await idle_cpu(procs, "at the end"))

        async with aiohttp.ClientSession() as http:
            for name, n in nodes.items():
                after = await read_counters(http, n)
                results.counters[name] = {
                    k: v - before[name].get(k, 0)
                    for k, v in after.items()
                    if v != before[name].get(k, 0)
                }
                results.sent_to[name] = n.signals_sent
        return results
    finally:
        for n in reversed(nodes.values()):
            await stop_node(n.server)
        stop_redis(redis)
        logs = {"redis": (redis.log_path, "redis.log")} | {
            f"node {n.name}": (n.server.log_path, f"node-{n.name}.log") for n in nodes.values()
        }
        for name, (path, copy) in logs.items():
            count, last = log_problems(path)
            if count:
                print(f"{name}: {count} warning/error line(s); the last:", *last, sep="\n  ")
            if args.logs and path.exists():
                args.logs.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, args.logs / copy)


# ---- report ----


def report(args: argparse.Namespace, r: Results) -> bool:
    print()
    print(heading("Multi-node benchmark") + f", aiohttp {aiohttp.__version__}")
    checks: list[tuple[bool, str]] = []

    if r.rounds:
        print(
            f"Latency: {args.pairs} rooms per placement, {args.rate:,.0f} signals/s in total,"
            f" {args.rounds} rounds of {args.duration:g} s measured per placement (after"
            f" {args.warmup:g} s); one-way, pooled over the rounds."
        )
        head = ["figure", *(PLACEMENT_LABEL[p] for p in PLACEMENTS)]
        rows: list[list[str]] = []
        for label, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            rows.append(
                [f"signal latency {label}, ms"]
                + [f"{percentile(r.pooled(p), q):.2f}" for p in PLACEMENTS]
            )
        rows.append(
            ["p99 per round, ms"]
            + [" / ".join(f"{t.percentile(0.99):.1f}" for t in r.tallies(p)) for p in PLACEMENTS]
        )
        rows.append(["samples"] + [f"{len(r.pooled(p)):,}" for p in PLACEMENTS])
        rows.append(
            ["sent / received / lost / dup"]
            + [
                " / ".join(
                    f"{sum(getattr(t, what) for t in r.tallies(p)):,}"
                    for what in ("sent", "received", "lost", "duplicates")
                )
                for p in PLACEMENTS
            ]
        )
        rows.append(
            ["lost with the socket open / late / out of order"]
            + [
                " / ".join(
                    f"{sum(getattr(t, what) for t in r.tallies(p)):,}"
                    for what in ("lost_open", "late", "out_of_order")
                )
                for p in PLACEMENTS
            ]
        )
        for proc in ("node A", "node B", "node M", "redis"):
            rows.append(
                [f"{proc} CPU %, median of rounds"]
                + [
                    f"{median(t.cpu.procs[proc] for t in r.tallies(p) if t.cpu):.0f}"
                    for p in PLACEMENTS
                ]
            )
        rows.append(
            ["load generator CPU %"]
            + [
                f"{median(t.cpu.load_generator for t in r.tallies(p) if t.cpu):.0f}"
                for p in PLACEMENTS
            ]
        )
        rows.append(
            ["other processes CPU %, max of rounds"]
            + [f"{max(t.cpu.others for t in r.tallies(p) if t.cpu):.0f}" for p in PLACEMENTS]
        )
        table(head, rows)
        print()
        rows = []
        for other in ("same", "split", "memory"):
            rows.append(
                [
                    f"cross / {PLACEMENT_LABEL[other]}",
                    f"{r.pooled_ratio('cross', other, 0.5):.2f}",
                    f"{r.paired_ratio('cross', other, 0.5):.2f}",
                    f"{r.pooled_ratio('cross', other, 0.99):.2f}",
                    f"{r.paired_ratio('cross', other, 0.99):.2f}",
                ]
            )
        table(
            ["ratio", "p50 pooled", "p50 median of rounds", "p99 pooled", "p99 median of rounds"],
            rows,
        )
        cross99 = percentile(r.pooled("cross"), 0.99)
        for same in ("same", "split"):
            ratio = cross99 / percentile(r.pooled(same), 0.99)
            checks.append(
                (
                    ratio <= TARGET_P99_RATIO,
                    f"cross-node p99 <= {TARGET_P99_RATIO:g} x {PLACEMENT_LABEL[same]} p99:"
                    f" {ratio:.2f} x ({cross99:.2f} against"
                    f" {percentile(r.pooled(same), 0.99):.2f} ms; median of the per-round"
                    f" ratios {r.paired_ratio('cross', same, 0.99):.2f})",
                )
            )

    if r.count is not None:
        c = r.count
        assert c.cpu is not None
        print()
        print(
            f"Count: {c.sent:,} signals across nodes (therapist on A, client on B, both"
            f" directions) over {args.pairs} rooms at {c.sent / c.seconds:,.0f}/s"
            f" ({c.seconds:.1f} s)."
        )
        table(
            ["figure", "value"],
            [
                ["sent", f"{c.sent:,}"],
                ["not sent: socket closed by its node", f"{c.unsent:,}"],
                ["received", f"{c.received:,}"],
                ["lost", f"{c.lost}"],
                ["lost although the receiving socket stayed open", f"{c.lost_open}"],
                ["late (after the stretch stopped waiting, 30 s)", f"{c.late}"],
                ["duplicates", f"{c.duplicates}"],
                ["out of order", f"{c.out_of_order}"],
                [
                    "latency p50 / p99 / max, ms",
                    f"{c.percentile(0.5):.2f} / {c.percentile(0.99):.2f} / {c.percentile(1.0):.1f}",
                ],
                ["last message in, s after the last send", f"{c.drain_seconds:.3f}"],
                ["CPU %", cpu_text(c.cpu)],
            ],
        )
        checks.append(
            (
                c.sent >= TARGET_MESSAGES and c.lost == 0 and c.duplicates == 0 and not c.unsent,
                f"no message lost in {TARGET_MESSAGES:,}: sent {c.sent:,}, received"
                f" {c.received:,}, lost {c.lost}, duplicated {c.duplicates}, not sent {c.unsent}",
            )
        )

    if r.joins:
        print()
        print(
            f"Joins: {args.join_rooms} rooms per run (therapist, then client into the waiting"
            f" room), {args.repeat} runs per configuration, alternating; medians."
        )
        rows = []
        for config in JOIN_CONFIGS:
            runs = [j for j in r.joins if j.config == config]
            rows.append(
                [
                    JOIN_LABEL[config],
                    f"{median(j.joins_per_s for j in runs):,.0f}",
                    ", ".join(f"{j.joins_per_s:,.0f}" for j in runs),
                    f"{median(j.node_ms_per_join for j in runs):.2f}",
                    f"{median(j.cpu.procs['node A'] for j in runs):.0f}",
                    f"{median(j.cpu.procs['node B'] for j in runs):.0f}",
                    f"{median(j.cpu.procs['node M'] for j in runs):.0f}",
                    f"{median(j.cpu.procs['redis'] for j in runs):.0f}",
                    f"{median(j.cpu.load_generator for j in runs):.0f}",
                    f"{max(j.cpu.others for j in runs):.0f}",
                    str(sum(j.failed for j in runs)),
                ]
            )
        table(
            ["configuration", "joins/s", "per run", "node CPU ms/join", "A %", "B %", "M %",
             "redis %", "load gen %", "others % max", "failed rooms"],
            rows,
        )  # fmt: skip
        one = [j for j in r.joins if j.config == "one"]
        two = [j for j in r.joins if j.config == "two"]
        ratios = [t.joins_per_s / o.joins_per_s for o, t in zip(one, two, strict=True)]
        print(
            f"joins/s, two nodes / one node: median of per-run ratios {median(ratios):.2f}"
            f" ({', '.join(f'{x:.2f}' for x in ratios)})"
        )

    if r.burst:
        print(
            f"Burst check (not a figure): {args.burst_joins} therapist joins on node A,"
            f" {args.burst_in_flight} in flight: {dict(r.burst)}"
        )
        refused = args.burst_joins - r.burst["joined"]
        if refused:
            print(f"  {refused} of {args.burst_joins} refused or failed part-way: see the node log")

    if r.rounds or r.count:
        print(f"Sockets of the signal phases closed by a node before the end: {r.closed_sockets}")
    for when, cpu in r.idle:
        print(f"Idle, {when} (3 s without traffic): CPU {cpu_text(cpu)}")
    print()
    print("Signals sent to each node by the load generator, and the nodes' own counters:")
    for name, counters in r.counters.items():
        print(
            f"  node {name}: sent {r.sent_to.get(name, 0):,},"
            f" counted messages_total:signal {counters.get('messages_total:signal', 0):,};"
            f" errors {({k: v for k, v in counters.items() if k.startswith('errors')}) or 'none'}"
        )
    errors = r.errors if r.joins else ERRORS.counts
    print(f"Errors received by the load generator, burst aside: {dict(errors) or 'none'}")

    print()
    targets = Targets()
    for ok, text in checks:
        targets.check(ok, text)
    stretches = [t for _, _, t in r.rounds] + ([r.count] if r.count else [])
    others = [t.cpu.others for t in stretches if t.cpu] + [j.cpu.others for j in r.joins]
    noisy_warning(others, "stretches")
    return targets.met


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argument_parser("bench.multinode", __doc__)
    add = parser.add_argument
    add("--pairs", type=int, default=100, help="rooms per placement, latency and count (100)")
    add("--rate", type=float, default=1000.0, help="signals/s in total, latency rounds (1000)")
    add("--duration", type=float, default=5.0, help="measured seconds per latency round (5)")
    add("--warmup", type=float, default=1.0, help="unmeasured seconds before that (1)")
    add("--rounds", type=int, default=4, help="latency rounds; each runs every placement (4)")
    add("--messages", type=int, default=TARGET_MESSAGES, help="signals in the count phase (100000)")
    add("--count-rate", type=float, default=2000.0, help="signals/s, count phase (2000)")
    add("--join-rooms", type=int, default=1000, help="rooms per join run, 2 joins each (1000)")
    add("--settle", type=float, default=3.0, help="seconds of rest after each join run (3)")
    add("--repeat", type=int, default=3, help="join runs per configuration (3)")
    # 50: a node's Redis client refuses work past 100 connections in use (see the burst).
    add("--connect-concurrency", type=int, default=50, help="joins/admits/leaves in flight (50)")
    add("--burst-joins", type=int, default=1000, help="joins in the burst check, 0 skips (1000)")
    add("--burst-in-flight", type=int, default=300, help="joins in flight, burst check (300)")
    add("--logs", type=Path, help="copy the servers' output into this folder")
    add("--phases", default="signals,joins", help="comma-separated: signals, joins")
    args = parser.parse_args(argv)
    args.phases = set(args.phases.split(","))
    if (
        args.pairs < 2
        or args.rounds < 1
        or args.repeat < 1
        or min(args.rate, args.count_rate, args.duration) <= 0
        or not args.phases <= {"signals", "joins"}
    ):
        parser.error("--pairs >= 2, --rounds/--repeat >= 1, rates and --duration > 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile_limit()
    # A plain `kill` unwinds like Ctrl-C, so that the servers and redis-server are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-multinode-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    finished(report(args, results), started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
