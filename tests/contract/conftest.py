"""The store and bus contract runs against every backend: memory, and Redis (a real server
the tests start). `node` is one node's (store, bus) on each backend; `redis_nodes(n)` gives
n nodes sharing one Redis, for what only several nodes can show."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from signaling.backends import make_backends
from signaling.bus import MessageBus
from signaling.store import RoomStore
from tests.redis_server import RedisServer
from tests.support import make_settings

Node = tuple[RoomStore, MessageBus]
RedisNodes = Callable[..., Awaitable[list[Node]]]


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
