"""Shared test helpers: settings, link minting, and a WebSocket participant."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType

from signaling.config import Settings
from signaling.core.model import Permission, Role, RoomSettings
from signaling.tokens import KeyRing

SECRET = "test-signing-secret-that-is-long-enough-000"
API_KEY = "test-api-key-of-forty-characters-long-xx"
TIMEOUT = 5.0


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "secret": SECRET,
        "api_keys": (API_KEY,),
        "grace_seconds": 1.0,
        "join_timeout_seconds": 1.0,
        "heartbeat_seconds": 5.0,
        "node_id": "test-node",
        "base_url": "http://sessionroom.test",
    }
    values.update(overrides)
    return Settings(**values)


def make_keys() -> KeyRing:
    return KeyRing(SECRET.encode())


def mint(
    keys: KeyRing,
    room: str,
    role: Role = Role.CLIENT,
    name: str = "Alex",
    *,
    not_before: float | None = None,
    valid_for: float = 3600,
    settings: RoomSettings | None = None,
    permissions: frozenset[Permission] | None = None,
) -> str:
    start = int(time.time() if not_before is None else not_before)
    return keys.mint(
        room=room,
        role=role,
        name=name,
        not_before=start,
        expires=start + int(valid_for),
        room_settings=settings,
        permissions=permissions,
    )


@dataclass
class Peer:
    """One participant's socket. `expect` waits for a message type and keeps the others."""

    ws: ClientWebSocketResponse
    link: str = ""
    joined: dict[str, Any] = field(default_factory=dict)
    backlog: list[dict[str, Any]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.joined["participant"]["id"])

    async def send(self, **message: Any) -> None:
        await self.ws.send_str(json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        if self.backlog:
            return self.backlog.pop(0)
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not WSMsgType.TEXT:
            raise AssertionError(f"expected a message, got {msg.type.name} {msg.data!r}")
        data: dict[str, Any] = json.loads(msg.data)
        return data

    async def expect(self, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        for i, m in enumerate(self.backlog):
            if m["type"] == kind:
                return self.backlog.pop(i)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no {kind!r} message; got {self.backlog}")
            msg = await self.ws.receive(timeout=left)
            if msg.type is not WSMsgType.TEXT:
                raise AssertionError(f"expected {kind!r}, socket gave {msg.type.name} {msg.data!r}")
            data: dict[str, Any] = json.loads(msg.data)
            if data["type"] == kind:
                return data
            self.backlog.append(data)

    async def expect_error(self, code: str) -> dict[str, Any]:
        error = await self.expect("error")
        assert error["code"] == code, error
        assert error["message"]
        return error

    async def expect_closed(self, timeout: float = TIMEOUT) -> int | None:
        """Read until the server closes the socket; returns the close code."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                return self.ws.close_code
            if msg.type is WSMsgType.TEXT:
                self.backlog.append(json.loads(msg.data))

    async def before(
        self, kind: str, timeout: float = TIMEOUT, **fields: Any
    ) -> list[dict[str, Any]]:
        """Every message that came before the marker, which is consumed: the first `kind`
        message whose fields include `fields` (`from_` for its `from`).

        How a test shows that something did not happen: after the act, it causes a message
        that must reach this socket later on the same ordered path (a signal or chat from a
        peer, a lobby notice, a later grace period's `peer_left`), and asserts on what came
        before it. Never a fixed wait: a slow delivery is still seen, a fast run stays fast.
        """

        def is_marker(m: dict[str, Any]) -> bool:
            return m["type"] == kind and all(m.get(k.rstrip("_")) == v for k, v in fields.items())

        for i, m in enumerate(self.backlog):
            if is_marker(m):
                got = self.backlog[:i]
                del self.backlog[: i + 1]
                return got
        got = list(self.backlog)
        self.backlog.clear()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            try:
                if left <= 0:
                    raise TimeoutError
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                raise AssertionError(f"no {kind!r} marker {fields}; got {got}") from None
            if msg.type is not WSMsgType.TEXT:
                raise AssertionError(
                    f"no {kind!r} marker, socket gave {msg.type.name} {msg.data!r} after {got}"
                )
            data: dict[str, Any] = json.loads(msg.data)
            if is_marker(data):
                return got
            got.append(data)

    async def barrier(self) -> list[dict[str, Any]]:
        """Every message this socket was sent before the server read one sent now.

        The protocol has no ping, so the marker is a message the server refuses at once
        whatever the participant's state: an unknown type, answered `bad_message`. A node
        reads a socket's messages one at a time and queues that answer behind everything
        already queued for the socket, so it comes after whatever this socket's earlier
        messages caused here, and after whatever another socket's finished act sent here
        through the in-memory bus. (Across nodes, a message from another node needs a marker
        on its own path: see `before`.) Not for a test whose earlier message is itself
        answered `bad_message`.
        """
        await self.send(type="barrier")
        return await self.before("error", code="bad_message")
