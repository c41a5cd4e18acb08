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

    async def quiet(self, wait: float = 0.2) -> list[dict[str, Any]]:
        """Whatever arrives within `wait`: used to show that nothing was sent."""
        got = list(self.backlog)
        self.backlog.clear()
        try:
            while True:
                msg = await self.ws.receive(timeout=wait)
                if msg.type is not WSMsgType.TEXT:
                    break
                got.append(json.loads(msg.data))
        except TimeoutError:
            pass
        return got
