from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signaling.app import create_app
from signaling.config import Settings
from signaling.core.model import Role, RoomSettings
from signaling.tokens import KeyRing
from tests.redis_server import RedisServer
from tests.support import API_KEY, Peer, make_keys, make_settings, mint

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real redis-server for the whole run; tests keep apart by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def keys() -> KeyRing:
    return make_keys()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # Recordings and the generated secret go under the test's own folder.
    return make_settings(state_dir=tmp_path / "state")


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, settings: Settings, keys: KeyRing
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings, keys))


class Harness:
    """Opens sockets against one test server and mints links for it."""

    def __init__(self, client: TestClient[Any, Any], keys: KeyRing) -> None:
        self.http = client
        self.keys = keys
        self.api_headers = {"Authorization": f"Bearer {API_KEY}"}

    def token(self, room: str, role: Role = Role.CLIENT, name: str = "Alex", **kw: Any) -> str:
        return mint(self.keys, room, role, name, **kw)

    async def open(self) -> Peer:
        return Peer(await self.http.ws_connect("/ws"))

    async def join(self, token: str, resume: str | None = None) -> Peer:
        peer = await self.open()
        peer.link = token
        message: dict[str, Any] = {"type": "join", "token": token}
        if resume:
            message["resume"] = resume
        await peer.send(**message)
        peer.joined = await peer.expect("joined")
        return peer

    async def therapist(self, room: str, name: str = "Dr Sam", **kw: Any) -> Peer:
        return await self.join(self.token(room, Role.THERAPIST, name, **kw))

    async def client(self, room: str, name: str = "Alex", **kw: Any) -> Peer:
        return await self.join(self.token(room, Role.CLIENT, name, **kw))

    async def in_call(self, room: str, settings: RoomSettings | None = None) -> tuple[Peer, Peer]:
        """A therapist and an admitted client in `room`."""
        therapist = await self.therapist(room, settings=settings)
        client = await self.client(room, settings=settings)
        await therapist.expect("lobby")
        await therapist.send(type="admit", participant=client.id)
        await client.expect("admitted")
        await therapist.expect("peer_joined")
        return therapist, client


@pytest.fixture
def harness(client: TestClient[Any, Any], keys: KeyRing) -> Harness:
    return Harness(client, keys)
