"""What every MessageBus must do, on every backend; and across nodes, on Redis."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
import redis.asyncio as aioredis

from signaling.bus import RESUBSCRIBED, Envelope, MessageBus
from tests.contract.conftest import Node, RedisNodes
from tests.polling import eventually
from tests.redis_server import RedisServer


class Inbox:
    def __init__(self) -> None:
        self.got: list[Envelope] = []

    def __call__(self, envelope: Envelope) -> None:
        self.got.append(envelope)

    @property
    def texts(self) -> list[Any]:
        return [e.payload["n"] if e.payload else None for e in self.got]

    async def until(self, count: int, timeout: float = 5.0) -> list[Any]:
        await eventually(lambda: len(self.got) >= count, timeout, what=f"{count} envelopes")
        return self.texts

    async def through(self, bus: MessageBus, n: int, to: str = "p1") -> list[Any]:
        """What arrived before a marker envelope `n`, published now to `to`: what came of
        whatever was sent before it on the same way (never a fixed wait)."""
        await bus.publish(_env(to, n))
        await eventually(lambda: n in self.texts, what=f"the marker {n}")
        got = self.texts
        assert got[-1] == n, got  # nothing after the marker either, so far
        return got[:-1]


def _env(to: str, n: int, origin: str = "node-0") -> Envelope:
    return Envelope(to=to, origin=origin, payload={"type": "chat", "n": n})


async def test_delivers_to_a_subscriber(node: Node) -> None:
    _, bus = node
    inbox = Inbox()
    await bus.subscribe("p1", inbox)
    for n in range(3):
        await bus.publish(_env("p1", n))
    assert await inbox.until(3) == [0, 1, 2]
    assert inbox.got[0].origin == "node-0"


async def test_keeps_envelopes_while_away_in_order(node: Node) -> None:
    _, bus = node
    first, second = Inbox(), Inbox()
    await bus.subscribe("p1", first)
    await bus.unsubscribe("p1", first)
    for n in range(5):
        await bus.publish(_env("p1", n))
    await bus.subscribe("p1", second)
    assert await second.until(5) == [0, 1, 2, 3, 4]
    assert first.got == []


async def test_unsubscribing_someone_else_changes_nothing(node: Node) -> None:
    _, bus = node
    current, stale = Inbox(), Inbox()
    await bus.subscribe("p1", current)
    await bus.unsubscribe("p1", stale)
    await bus.publish(_env("p1", 1))
    assert await current.until(1) == [1]


async def test_discard_drops_what_was_kept(node: Node) -> None:
    _, bus = node
    for n in range(3):
        await bus.publish(_env("p1", n))
    dropped = await bus.discard("p1")
    # Returned, never delivered: the service tells a chat's sender it was not delivered.
    assert [e.payload["n"] if e.payload else None for e in dropped] == [0, 1, 2]
    assert dropped[0].to == "p1"
    assert await bus.discard("p1") == []
    await bus.publish(_env("p1", 9))
    inbox = Inbox()
    await bus.subscribe("p1", inbox)
    assert await inbox.through(bus, 10) == [9]


async def test_a_mailbox_keeps_the_latest_256(node: Node) -> None:
    _, bus = node
    for n in range(300):
        await bus.publish(_env("p1", n))
    inbox = Inbox()
    await bus.subscribe("p1", inbox)
    assert await inbox.until(256) == list(range(44, 300))


async def test_node_messages_reach_this_node(node: Node) -> None:
    _, bus = node
    seen: list[Any] = []
    bus.on_node_message(seen.append)
    await bus.to_nodes({"kind": "recording_cut", "recording": "r"})
    assert seen == [{"kind": "recording_cut", "recording": "r"}]
    assert bus.node_id in await bus.live_nodes()


async def test_delivery_across_nodes(redis_nodes: RedisNodes) -> None:
    (_, a), (_, b) = await redis_nodes(2)
    inbox = Inbox()
    await b.subscribe("p1", inbox)
    for n in range(100):
        await a.publish(_env("p1", n, origin=a.node_id))
    assert await inbox.until(100) == list(range(100))
    assert {e.origin for e in inbox.got} == {a.node_id}


async def test_a_socket_moving_to_another_node_loses_nothing(redis_nodes: RedisNodes) -> None:
    (_, a), (_, b), (_, sender) = await redis_nodes(3)
    on_a, on_b = Inbox(), Inbox()
    told_a: list[Any] = []
    a.on_node_message(told_a.append)
    await a.subscribe("p1", on_a)

    async def send_all() -> None:
        for n in range(200):
            await sender.publish(_env("p1", n))
            if n % 20 == 0:
                await asyncio.sleep(0)

    sending = asyncio.create_task(send_all())
    await on_a.until(1)  # under way on node A
    await a.unsubscribe("p1", on_a)  # the socket dropped on node A ...
    await b.subscribe("p1", on_b)  # ... and resumed on node B
    await sending
    # Node A hears its channel in order: once it has a later broadcast, it has passed on to
    # B (or the mailbox B emptied) whatever reached it after the socket left...
    await sender.to_nodes({"kind": "marker"})
    await eventually(lambda: told_a, what="the broadcast on node A")
    # ...so all of it reaches B before a marker sent to B now.
    got = on_a.texts + await on_b.through(sender, 200)
    assert sorted(got) == list(range(200)), (len(on_a.got), len(on_b.got))


async def test_node_messages_reach_every_node_once(redis_nodes: RedisNodes) -> None:
    (_, a), (_, b) = await redis_nodes(2)
    seen_a: list[Any] = []
    seen_b: list[Any] = []
    a.on_node_message(seen_a.append)
    b.on_node_message(seen_b.append)
    await a.to_nodes({"kind": "x"})
    await eventually(lambda: seen_b, what="the message on node B")
    # Once each: nothing more, on either node, before a later message from node B (which
    # node A hears through Redis, after its own).
    await b.to_nodes({"kind": "marker"})
    await eventually(lambda: {"kind": "marker"} in seen_a, what="the marker on node A")
    assert seen_a == seen_b == [{"kind": "x"}, {"kind": "marker"}]


async def test_a_closed_node_is_not_live_and_its_mail_is_kept(redis_nodes: RedisNodes) -> None:
    (_, a), (_, b) = await redis_nodes(2)
    assert await a.live_nodes() == {a.node_id, b.node_id}
    await b.subscribe("p1", Inbox())
    await b.close()
    assert await a.live_nodes() == {a.node_id}
    await a.publish(_env("p1", 7))  # to a socket whose node is gone: kept, not lost
    inbox = Inbox()
    await a.subscribe("p1", inbox)
    assert await inbox.until(1) == [7]


async def test_reconnects_after_redis_restarts(
    redis_nodes: RedisNodes, redis_server: RedisServer
) -> None:
    (_, a), (_, b) = await redis_nodes(2)
    inbox = Inbox()
    await b.subscribe("p1", inbox)
    redis_server.stop()
    redis_server.start()  # empty: Redis keeps nothing on disk here
    # Each node claims its sockets and channel again within a few seconds.
    deadline = asyncio.get_running_loop().time() + 10
    n = 0
    while not inbox.got:
        assert asyncio.get_running_loop().time() < deadline, "never delivered again"
        with contextlib.suppress(Exception):
            await a.publish(_env("p1", n))
        n += 1
        await asyncio.sleep(0.2)
    # Both heartbeats come back too (delivery may come first: what waited in the mailbox is
    # handed over as soon as node B has subscribed again).
    while await a.live_nodes() != {a.node_id, b.node_id}:
        assert asyncio.get_running_loop().time() < deadline, await a.live_nodes()
        await asyncio.sleep(0.1)


async def test_a_dropped_subscription_loses_nothing_and_keeps_the_order(
    redis_nodes: RedisNodes, redis_server: RedisServer
) -> None:
    (_, a), (_, b) = await redis_nodes(2)
    inbox = Inbox()
    told: list[Any] = []
    b.on_node_message(told.append)
    await b.subscribe("p1", inbox)
    await a.publish(_env("p1", 0))
    await inbox.until(1)
    assert told == []  # the first subscription is no news
    admin = aioredis.from_url(redis_server.url)
    try:
        # Redis stays up, but every node's pub/sub connection is cut: what is sent before
        # node B has subscribed again must wait for it, not vanish.
        assert await admin.client_kill_filter(_type="pubsub") >= 2
        for n in range(1, 101):
            await a.publish(_env("p1", n))
        # Half before B is back, half after.
        await eventually(lambda: told, what="node B subscribed again")
        for n in range(101, 201):
            await a.publish(_env("p1", n))
    finally:
        await admin.aclose()
    # In order, and none twice.
    assert await inbox.through(a, 201) == list(range(201))
    # Broadcasts are not kept: the node is told it may have missed some, once.
    assert told == [{"kind": RESUBSCRIBED}]


async def test_a_stale_location_does_not_send_an_envelope_round_and_round(
    redis_nodes: RedisNodes,
) -> None:
    (_, a), (_, b) = await redis_nodes(2)
    await a.subscribe("p1", Inbox())
    # The socket went, but removing its location failed (Redis was busy): it still names A.
    a._subscribers.clear()  # type: ignore[attr-defined]
    await b.publish(_env("p1", 5))
    # Node A, finding no socket, forgets the stale location and keeps the envelope.
    mailbox = b._mailbox("p1")  # type: ignore[attr-defined]
    redis = b._redis  # type: ignore[attr-defined]
    await eventually(lambda: redis.llen(mailbox), what="the envelope in the mailbox")
    inbox = Inbox()
    await b.subscribe("p1", inbox)  # the socket comes back, on B
    assert await inbox.through(b, 6) == [5]  # once, not again and again


async def _everything_in(redis_server: RedisServer) -> str:
    """Every key and value Redis holds, strings and lists, as one text to search."""
    admin = aioredis.from_url(redis_server.url)
    try:
        held: list[Any] = []
        for key in await admin.keys("*"):
            kind = await admin.type(key)
            held.append(key)
            if kind == b"string":
                held.append(await admin.get(key))
            elif kind == b"list":
                held += await admin.lrange(key, 0, -1)
        return repr(held)
    finally:
        await admin.aclose()


async def test_a_mailbox_holds_no_plaintext(
    redis_nodes: RedisNodes, redis_server: RedisServer
) -> None:
    (_, a), (_, b) = await redis_nodes(2)
    chat = Envelope(to="p1", origin="node-0", payload={"type": "chat", "text": "my secret worry"})
    await a.publish(chat)  # nobody subscribed: it waits in the mailbox
    held = await _everything_in(redis_server)
    assert ":mailbox:p1" in held
    assert "secret worry" not in held
    inbox = Inbox()
    await b.subscribe("p1", inbox)  # opened by another node with the same secret
    await eventually(lambda: inbox.got, what="the kept envelope")
    assert inbox.got == [chat]


async def test_an_envelope_from_a_node_with_another_secret_is_dropped(
    redis_nodes: RedisNodes, caplog: pytest.LogCaptureFixture
) -> None:
    ((_, a),) = await redis_nodes(1)
    ((_, stranger),) = await redis_nodes(1, secret="a-different-secret-that-is-long-enough-1")
    inbox = Inbox()
    await a.subscribe("p1", inbox)
    await stranger.publish(_env("p1", 1))  # published live to node A
    await stranger.publish(_env("p2", 2))  # kept in p2's mailbox
    await a.publish(_env("p1", 3))
    assert await inbox.through(a, 4) == [3]
    later = Inbox()
    await a.subscribe("p2", later)
    assert await later.through(a, 5, to="p2") == []
    dropped = [r for r in caplog.records if "does not open" in r.getMessage()]
    assert {getattr(r, "participant", None) for r in dropped} == {"p1", "p2"}
