"""The store and bus contract runs against every backend: memory, and Redis (a real server
the tests start). `node` is one node's (store, bus) on each backend; `redis_nodes(n)` gives
n nodes sharing one Redis, for what only several nodes can show."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from signaling.backends import make_backends
from signaling.bus import MessageBus
from signaling.memory_store import MemoryRoomStore
from signaling.redis_store import RedisRoomStore
from signaling.sealed_text import derive_keys
from signaling.store import RoomStore
from tests.redis_server import RedisServer
from tests.support import SECRET, make_settings

Node = tuple[RoomStore, MessageBus]
RedisNodes = Callable[..., Awaitable[list[Node]]]
# A store of the backend under test that keeps about this many events (`events_kept`).
StoreKeeping = Callable[[int], Awaitable[RoomStore]]


@pytest.fixture
async def redis_nodes(redis_server: RedisServer) -> AsyncIterator[RedisNodes]:
    made: list[Node] = []
    prefix = "t" + secrets.token_hex(4)  # this test's own keys

    async def make(count: int, **overrides: Any) -> list[Node]:
        out = []
        for _ in range(count):
            settings = make_settings(
                redis_url=redis_server.url,
                redis_prefix=prefix,
                node_id=f"node-{len(made)}",
                grace_seconds=2.0,
                **overrides,  # e.g. another `secret`
            )
            store, bus = make_backends(settings)
            await bus.start()
            made.append((store, bus))
            out.append((store, bus))
        return out

    yield make
    for store, bus in made:
        await store.close()
        await bus.close()


@pytest.fixture(params=["memory", "redis"])
async def node(request: pytest.FixtureRequest, redis_nodes: RedisNodes) -> AsyncIterator[Node]:
    if request.param == "memory":
        store, bus = make_backends(make_settings(node_id="node-0"))
        yield store, bus
        await store.close()
        await bus.close()
    else:
        (pair,) = await redis_nodes(1)
        yield pair


@pytest.fixture(params=["memory", "redis"])
async def store_keeping(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[StoreKeeping]:
    """Stores built directly, for what the settings do not choose (how many events to keep)."""
    clients: list[aioredis.Redis] = []

    async def make(events_kept: int) -> RoomStore:
        if request.param == "memory":
            return MemoryRoomStore(events_kept=events_kept)
        client = aioredis.from_url(redis_server.url)
        clients.append(client)
        return RedisRoomStore(
            client,
            "t" + secrets.token_hex(4),  # this store's own keys
            retention_seconds=3600.0,
            keys=derive_keys(SECRET.encode()),
            events_kept=events_kept,
        )

    yield make
    for client in clients:
        await client.aclose()
