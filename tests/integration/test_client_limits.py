"""Limits per client address, the client address behind a proxy, API key length and
/metrics access, as a client, a proxy and an operator see them: real sockets, and the real
`sessionroom serve` process where the listeners themselves are the point."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signaling.app import create_app
from signaling.core.model import Role
from signaling.tokens import KeyRing
from tests.server_process import SESSIONROOM, Server
from tests.support import API_KEY, SECRET, TIMEOUT, Peer, make_settings, mint

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
API = {"Authorization": f"Bearer {API_KEY}"}
LOOPBACK = (ip_network("127.0.0.1/32"),)
METRICS_TOKEN = "metrics-token-for-the-limits-test-0123456789"


def xff(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def app_client(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path, **settings: Any
) -> TestClient[Any, Any]:
    app = create_app(make_settings(state_dir=tmp_path / "state", **settings), keys)
    return await aiohttp_client(app)


async def open_socket(http: TestClient[Any, Any], **headers: str) -> Peer:
    return Peer(await http.ws_connect("/ws", headers=headers))


async def join(peer: Peer, keys: KeyRing, room: str = "r") -> None:
    await peer.send(type="join", token=mint(keys, room, Role.THERAPIST, "Dr Sam"))
    peer.joined = await peer.expect("joined")


async def assert_refused(peer: Peer) -> None:
    error = await peer.expect_error("too_many_connections")
    assert "connections" in error["message"]
    assert await peer.expect_closed() == 1008


async def until_accepted(http: TestClient[Any, Any], keys: KeyRing, **headers: str) -> Peer:
    """A socket that is let in; the server frees a closed socket's place as soon as it sees
    the close, so poll until it has."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        peer = await open_socket(http, **headers)
        try:
            await join(peer, keys, room="after")
            return peer
        except AssertionError:
            await peer.ws.close()
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


# --- sockets per address -------------------------------------------------------------------


async def test_the_socket_past_the_cap_is_refused_and_a_freed_place_is_reused(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(aiohttp_client, keys, tmp_path, max_sockets_per_address=3)
    # Open sockets count whether or not they have joined yet.
    peers = [await open_socket(http) for _ in range(2)]
    await join(peers[0], keys)
    peers.append(await open_socket(http))
    await assert_refused(await open_socket(http))
    # Those already open are untouched.
    await join(peers[1], keys)
    await peers[0].ws.close()
    fourth = await until_accepted(http, keys)
    assert fourth.joined["type"] == "joined"
    await assert_refused(await open_socket(http))
    text = await (await http.get("/metrics")).text()
    assert 'sessionroom_errors_total{code="too_many_connections"} 2' in text.splitlines()


async def test_addresses_behind_a_trusted_proxy_have_a_cap_each(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(
        aiohttp_client, keys, tmp_path, max_sockets_per_address=2, trusted_proxies=LOOPBACK
    )
    for _ in range(2):
        await open_socket(http, **xff("203.0.113.5"))
    await assert_refused(await open_socket(http, **xff("203.0.113.5")))
    # A client appended by the proxy after whatever the first one claimed.
    await assert_refused(await open_socket(http, **xff("198.51.100.1, 203.0.113.5")))
    await join(await open_socket(http, **xff("203.0.113.6")), keys)
    await join(await open_socket(http), keys)  # the proxy's own address is another one


async def test_a_spoofed_header_from_an_untrusted_peer_does_not_dodge_the_cap(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(aiohttp_client, keys, tmp_path, max_sockets_per_address=2)
    for n in range(2):
        await open_socket(http, **xff(f"203.0.113.{n}"))
    await assert_refused(await open_socket(http, **xff("203.0.113.99")))
    await assert_refused(await open_socket(http))


async def test_zero_means_no_cap(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(aiohttp_client, keys, tmp_path, max_sockets_per_address=0)
    peers = [await open_socket(http) for _ in range(60)]
    await join(peers[-1], keys)


# --- REST rate per address -------------------------------------------------------------------


async def create_room(http: TestClient[Any, Any], **headers: str) -> aiohttp.ClientResponse:
    return await http.post("/api/v1/rooms", json={}, headers={**API, **headers})


async def assert_rate_limited(response: aiohttp.ClientResponse) -> int:
    assert response.status == 429, await response.text()
    body = await response.json()
    assert body["code"] == "rate_limited" and body["message"]
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


async def test_rest_calls_past_the_burst_get_429_with_retry_after(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(
        aiohttp_client, keys, tmp_path, api_rate_burst=3, api_rate_per_second=1.0
    )
    for _ in range(3):
        assert (await create_room(http)).status == 201
    await assert_rate_limited(await create_room(http))
    # Refused calls cost nothing, and the budget refills at the rate: poll until it has.
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while (status := (await create_room(http)).status) == 429:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    assert status == 201
    # Only /api/v1 is limited: the page, health and the socket are not.
    for path in ("/healthz", "/readyz", "/join"):
        assert (await http.get(path)).status == 200, path


async def test_calls_without_a_valid_key_count_too(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(
        aiohttp_client, keys, tmp_path, api_rate_burst=3, api_rate_per_second=0.1
    )
    for _ in range(3):
        wrong = await http.post("/api/v1/rooms", json={}, headers={"Authorization": "Bearer x"})
        assert wrong.status == 401
    await assert_rate_limited(await create_room(http))
    await assert_rate_limited(await http.get("/api/v1/rooms/some-room"))


async def test_another_address_through_a_trusted_proxy_is_not_affected(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(
        aiohttp_client,
        keys,
        tmp_path,
        api_rate_burst=2,
        api_rate_per_second=0.1,
        trusted_proxies=LOOPBACK,
    )
    for _ in range(2):
        assert (await create_room(http, **xff("203.0.113.5"))).status == 201
    await assert_rate_limited(await create_room(http, **xff("203.0.113.5")))
    assert (await create_room(http, **xff("203.0.113.6"))).status == 201
    assert (await create_room(http, **xff("2001:db8:1:2::7"))).status == 201
    assert (await create_room(http)).status == 201  # the proxy itself


async def test_a_spoofed_header_from_an_untrusted_peer_does_not_dodge_the_rate(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(
        aiohttp_client, keys, tmp_path, api_rate_burst=2, api_rate_per_second=0.1
    )
    for n in range(2):
        assert (await create_room(http, **xff(f"203.0.113.{n}"))).status == 201
    await assert_rate_limited(await create_room(http, **xff("203.0.113.99")))


async def test_a_malformed_header_counts_against_the_proxy_itself(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(
        aiohttp_client,
        keys,
        tmp_path,
        api_rate_burst=2,
        api_rate_per_second=0.1,
        trusted_proxies=LOOPBACK,
    )
    for _ in range(2):
        assert (await create_room(http)).status == 201
    for header in ("not-an-address", "203.0.113.5:80", "203.0.113.5,"):
        await assert_rate_limited(await create_room(http, **xff(header)))
    assert (await create_room(http, **xff("203.0.113.5"))).status == 201


async def test_refusals_are_logged_once_per_address_and_minute(
    aiohttp_client: AiohttpClient,
    keys: KeyRing,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sessionroom.limits")
    http = await app_client(
        aiohttp_client,
        keys,
        tmp_path,
        api_rate_burst=1,
        api_rate_per_second=0.1,
        max_sockets_per_address=1,
        trusted_proxies=LOOPBACK,
    )
    for address in ("203.0.113.5", "203.0.113.6"):
        await create_room(http, **xff(address))
        for _ in range(5):
            await assert_rate_limited(await create_room(http, **xff(address)))
        await open_socket(http, **xff(address))
        for _ in range(5):
            await assert_refused(await open_socket(http, **xff(address)))
    addresses = [str(getattr(r, "address", "")) for r in caplog.records]
    assert sorted(addresses) == ["203.0.113.5"] * 2 + ["203.0.113.6"] * 2, caplog.text
    assert API_KEY not in caplog.text


async def test_rest_limit_zero_means_no_limit(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(aiohttp_client, keys, tmp_path, api_rate_per_second=0)
    for _ in range(150):
        assert (await http.get("/api/v1/rooms/nope", headers=API)).status == 404


# --- /metrics ------------------------------------------------------------------------------


async def test_metrics_behind_a_token(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(aiohttp_client, keys, tmp_path, metrics_token=METRICS_TOKEN)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {METRICS_TOKEN}"},
        API,
    ):
        refused = await http.get("/metrics", headers=headers)
        assert refused.status == 401
        assert (await refused.json())["code"] == "unauthorized"
        assert "sessionroom_sockets" not in await refused.text()
    allowed = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert allowed.status == 200
    assert "sessionroom_sockets 0" in (await allowed.text()).splitlines()
    # Health and readiness stay open.
    assert (await http.get("/healthz")).status == 200
    assert (await http.get("/readyz")).status == 200


async def test_with_a_metrics_port_the_main_listener_has_no_metrics(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    http = await app_client(aiohttp_client, keys, tmp_path, metrics_port=9464)
    assert (await http.get("/metrics")).status == 404
    assert (await http.get("/healthz")).status == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def metrics_server(tmp_path: Path) -> AsyncIterator[tuple[Server, int]]:
    metrics_port = _free_port()
    server = Server(
        tmp_path,
        SESSIONROOM_METRICS_HOST="127.0.0.1",
        SESSIONROOM_METRICS_PORT=str(metrics_port),
        SESSIONROOM_METRICS_TOKEN=METRICS_TOKEN,
        SESSIONROOM_MAX_SOCKETS_PER_ADDRESS="2",
        SESSIONROOM_TRUSTED_PROXIES="127.0.0.1",
    )
    await server.start()
    try:
        yield server, metrics_port
    finally:
        await server.stop()


async def test_serve_puts_metrics_on_their_own_port(metrics_server: tuple[Server, int]) -> None:
    server, metrics_port = metrics_server
    metrics_url = f"http://127.0.0.1:{metrics_port}"
    token = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{metrics_url}/metrics", headers=token) as served:
            assert served.status == 200
            assert "sessionroom_sockets 0" in (await served.text()).splitlines()
        async with http.get(f"{metrics_url}/metrics") as no_token:
            assert no_token.status == 401
        # That listener serves /metrics and nothing else...
        for path in ("/healthz", "/join", "/api/v1/rooms/r"):
            async with http.get(f"{metrics_url}{path}", headers=token) as other:
                assert other.status == 404, path
        # ...and the main listener everything but /metrics.
        async with http.get(f"{server.url}/metrics", headers=token) as main:
            assert main.status == 404
        async with http.get(f"{server.url}/healthz") as health:
            assert health.status == 200


async def test_serve_applies_the_limits_from_its_settings(
    metrics_server: tuple[Server, int],
) -> None:
    server, _ = metrics_server
    async with aiohttp.ClientSession() as http:
        held = [await http.ws_connect(f"{server.url}/ws", headers=xff("203.0.113.5"))]
        held.append(await http.ws_connect(f"{server.url}/ws", headers=xff("203.0.113.5")))
        refused = Peer(await http.ws_connect(f"{server.url}/ws", headers=xff("203.0.113.5")))
        await assert_refused(refused)
        other = Peer(await http.ws_connect(f"{server.url}/ws", headers=xff("203.0.113.6")))
        await join(other, KeyRing(SECRET.encode()))
        for ws in held:
            await ws.close()
        await other.ws.close()


# --- API keys --------------------------------------------------------------------------------


async def test_serve_refuses_to_start_with_a_short_api_key(tmp_path: Path) -> None:
    server = Server(tmp_path, SESSIONROOM_API_KEYS=f"{'k' * 40},change-me")
    proc = await asyncio.create_subprocess_exec(
        *SESSIONROOM,
        "serve",
        env=server.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    message = err.decode()
    assert message.startswith("sessionroom: SESSIONROOM_API_KEYS: API key 2 of 2"), message
    assert "at least 32" in message and "token_urlsafe" in message
    assert "change-me" not in message + out.decode()
    assert "listening" not in out.decode()
