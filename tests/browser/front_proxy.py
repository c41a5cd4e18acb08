"""A small reverse proxy in front of several `sessionroom serve` nodes: what the
deployment's load balancer (Caddy) does, for browser tests of several nodes.

Plain HTTP requests are forwarded whole; a WebSocket is relayed frame by frame to a socket
of its own on a node, and when either side closes, so does the other. New requests go to
`prefer` first and to the other nodes when it refuses the connection (a dead node), as a
load balancer retries. Each WebSocket is logged as a `Route`: which node it went to, and
(from the server's `joined` reply) whose socket it was and whether it resumed a place.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "trailers", "transfer-encoding", "upgrade",
        "host", "content-length",  # set afresh for each side
    }
)  # fmt: skip
# Close codes that say what happened but may not be sent in a close frame.
UNSENDABLE = frozenset({1005, 1006, 1015})
UPSTREAM_GONE = 1011  # what the browser hears when its node's socket dropped
BROWSER_GONE = 1001

Socket = web.WebSocketResponse | aiohttp.ClientWebSocketResponse


@dataclass
class Route:
    """One browser WebSocket and the node it was sent to (times are time.time())."""

    node: str
    opened: float
    participant: str | None = None
    resumed: bool | None = None
    joined: float | None = None
    closed: float | None = None
    close_code: int | None = None


class FrontProxy:
    def __init__(self, nodes: dict[str, str], prefer: str) -> None:
        self.nodes = nodes  # name -> base URL
        self.prefer = prefer
        self.routes: list[Route] = []
        self.refused: list[tuple[float, str]] = []  # (when, node) connections refused
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        self._client: aiohttp.ClientSession | None = None
        self._open: set[Socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    async def start(self) -> None:
        self._client = aiohttp.ClientSession(auto_decompress=False)
        await self._server.start_server()

    async def close(self) -> None:
        for ws in list(self._open):
            await ws.close(code=BROWSER_GONE)
        await self._server.close()
        if self._client is not None:
            await self._client.close()

    def _order(self) -> list[str]:
        return [self.prefer, *(name for name in self.nodes if name != self.prefer)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        assert self._client is not None
        headers = _pass(request.headers)
        body = await request.read()
        for name in self._order():
            try:
                async with self._client.request(
                    request.method,
                    self.nodes[name] + request.path_qs,
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,
                ) as upstream:
                    payload = await upstream.read()
                    return web.Response(
                        body=payload, status=upstream.status, headers=_pass(upstream.headers)
                    )
            except aiohttp.ClientConnectorError:
                self.refused.append((time.time(), name))
        return web.Response(status=502, text="No node answered.")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        for name in self._order():
            try:
                upstream = await self._client.ws_connect(self.nodes[name] + request.path_qs)
                break
            except aiohttp.ClientConnectorError:
                self.refused.append((time.time(), name))
        else:
            return web.Response(status=502, text="No node answered.")
        route = Route(name, time.time())
        self.routes.append(route)
        browser = web.WebSocketResponse()
        await browser.prepare(request)
        self._open |= {browser, upstream}
        try:
            await self._pump(browser, upstream, route)
        finally:
            self._open -= {browser, upstream}
        return browser

    async def _pump(
        self,
        browser: web.WebSocketResponse,
        upstream: aiohttp.ClientWebSocketResponse,
        route: Route,
    ) -> None:
        def note(text: str) -> None:
            with contextlib.suppress(ValueError, AttributeError, KeyError, TypeError):
                message = json.loads(text)
                if message.get("type") == "joined" and route.joined is None:
                    route.participant = message["participant"]["id"]
                    route.resumed = bool(message["resumed"])
                    route.joined = time.time()

        down = asyncio.create_task(_relay(upstream, browser, note))
        up = asyncio.create_task(_relay(browser, upstream, lambda _: None))
        done, _ = await asyncio.wait({down, up}, return_when=asyncio.FIRST_COMPLETED)
        first = down if down in done else up
        for task in (down, up):
            if task is not first:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        route.closed = time.time()
        if first is down:  # the node closed it, or died
            route.close_code = upstream.close_code
            await browser.close(code=_sendable(upstream.close_code, UPSTREAM_GONE))
            await upstream.close()
        else:
            route.close_code = browser.close_code
            await upstream.close(code=_sendable(browser.close_code, BROWSER_GONE))
            await browser.close()


async def _relay(source: Socket, sink: Socket, note: Callable[[str], None]) -> None:
    """Copies frames from `source` to `sink` until `source` closes (or `sink` fails)."""
    while True:
        message = await source.receive()
        try:
            if message.type is WSMsgType.TEXT:
                note(message.data)
                await sink.send_str(message.data)
            elif message.type is WSMsgType.BINARY:
                await sink.send_bytes(message.data)
            else:  # CLOSE, CLOSING, CLOSED or ERROR
                return
        except (ConnectionError, aiohttp.ClientError):
            return


def _sendable(code: int | None, otherwise: int) -> int:
    return otherwise if code is None or code in UNSENDABLE else code


def _pass(headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The end-to-end headers (a multidict's items() keeps repeated ones)."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in HOP_BY_HOP)
