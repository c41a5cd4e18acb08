"""TURN: each participant's own short-lived credentials in `joined`, checked by a real coturn.

The coturn tests start Debian's /usr/bin/turnserver on 127.0.0.1 and allocate a relay with
aioice's TURN client, the one aiortc uses: fresh credentials get a relayed address, expired
or forged ones get 401.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aioice import stun
from aioice.turn import TurnClientUdpProtocol

from media.ice import IceServer
from media.turn import turn_credentials
from signaling.app import create_app
from signaling.config import Settings
from signaling.tokens import KeyRing
from tests.conftest import AiohttpClient, Harness
from tests.support import make_settings
from tests.turn_server import TurnServer

TURN_SECRET = "turn-shared-secret-for-tests"
TURN_URLS = ("turn:turn.sessionroom.test:3478", "turns:turn.sessionroom.test:5349?transport=tcp")
STUN_URL = "stun:stun.sessionroom.test:3478"
TTL = 600.0
STEP_TIMEOUT = 5.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        state_dir=tmp_path / "state",
        ice_servers=(IceServer(urls=(STUN_URL,)),),
        turn_urls=TURN_URLS,
        turn_secret=TURN_SECRET,
        turn_ttl_seconds=TTL,
    )


def _turn_entry(joined: dict[str, Any]) -> dict[str, Any]:
    servers = joined["ice_servers"]
    assert servers[0] == {"urls": [STUN_URL]}  # the configured STUN server comes first
    turn = [s for s in servers if s["urls"][0].startswith("turn")]
    assert len(turn) == 1, servers
    entry: dict[str, Any] = turn[0]
    assert entry["urls"] == list(TURN_URLS)
    return entry


def _check_credentials(
    joined: dict[str, Any], participant_id: str, before: float, after: float
) -> str:
    entry = _turn_entry(joined)
    expiry, _, who = entry["username"].partition(":")
    assert who == participant_id
    assert int(before + TTL) <= int(expiry) <= after + TTL
    mac = hmac.new(TURN_SECRET.encode(), entry["username"].encode(), hashlib.sha1).digest()
    assert entry["credential"] == base64.b64encode(mac).decode()
    return str(entry["credential"])


async def test_each_joined_carries_its_own_turn_credentials(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = time.time()
    therapist = await harness.therapist("r")
    client = await harness.client("r")
    after = time.time()
    assert therapist.id != client.id
    mine = _check_credentials(therapist.joined, therapist.id, before, after)
    theirs = _check_credentials(client.joined, client.id, before, after)
    assert mine != theirs
    # A credential goes to its participant only: never into a log line.
    assert mine not in caplog.text and theirs not in caplog.text
    assert TURN_SECRET not in caplog.text


async def test_a_resumed_joined_carries_fresh_credentials(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.ws.close()
    await therapist.expect("peer_reconnecting")
    before = time.time()
    back = await harness.join(client.link, client.joined["resume"])
    after = time.time()
    assert back.joined["resumed"] is True and back.id == client.id
    _check_credentials(back.joined, client.id, before, after)


async def test_without_turn_joined_has_the_static_list(
    aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    settings = make_settings(state_dir=tmp_path / "s", ice_servers=(IceServer(urls=(STUN_URL,)),))
    harness = Harness(await aiohttp_client(create_app(settings, keys)), keys)
    therapist = await harness.therapist("r")
    assert therapist.joined["ice_servers"] == [{"urls": [STUN_URL]}]


# ---- a real coturn on loopback ----


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TurnServer]:
    server = TurnServer(tmp_path_factory.mktemp("coturn"))
    server.start()
    yield server
    server.stop()


async def _allocate(server: TurnServer, username: str, password: str) -> tuple[str, int]:
    """Allocate a UDP relay with aioice's TURN client; the relayed address, then released."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: TurnClientUdpProtocol(
            server.address,
            username=username,
            password=password,
            lifetime=600,
            channel_refresh_time=500,
        ),
        remote_addr=server.address,
    )
    try:
        relayed: tuple[str, int] = await asyncio.wait_for(protocol.connect(), STEP_TIMEOUT)
        await asyncio.wait_for(protocol.delete(), STEP_TIMEOUT)
        return relayed
    finally:
        transport.close()


async def _refused(server: TurnServer, username: str, password: str) -> int:
    with pytest.raises(stun.TransactionFailed) as failed:
        await _allocate(server, username, password)
    code = failed.value.response.error_code
    assert code is not None
    return code


@pytest.mark.network
async def test_coturn_allocates_with_fresh_credentials(coturn: TurnServer) -> None:
    username, credential = turn_credentials(coturn.secret, "k3J9abc", ttl=TTL, now=time.time())
    host, port = await _allocate(coturn, username, credential)
    assert host == "127.0.0.1" and port > 0, coturn.log


@pytest.mark.network
async def test_coturn_refuses_expired_credentials(coturn: TurnServer) -> None:
    # Minted an hour ago with a ten-minute lifetime: the expiry is in the past.
    username, credential = turn_credentials(
        coturn.secret, "k3J9abc", ttl=TTL, now=time.time() - 3600
    )
    assert int(username.split(":")[0]) < time.time()
    assert await _refused(coturn, username, credential) == 401


@pytest.mark.network
async def test_coturn_refuses_forged_credentials(coturn: TurnServer) -> None:
    username, _ = turn_credentials(coturn.secret, "k3J9abc", ttl=TTL, now=time.time())
    _, forged = turn_credentials("not-the-secret", "k3J9abc", ttl=TTL, now=time.time())
    assert await _refused(coturn, username, forged) == 401
    # Someone else's valid credential does not fit this username either.
    _, other = turn_credentials(coturn.secret, "someone-else", ttl=TTL, now=time.time())
    assert await _refused(coturn, username, other) == 401


@pytest.mark.network
async def test_coturn_accepts_what_joined_hands_out(
    coturn: TurnServer, aiohttp_client: AiohttpClient, keys: KeyRing, tmp_path: Path
) -> None:
    settings = make_settings(
        state_dir=tmp_path / "state", turn_urls=(coturn.url,), turn_secret=coturn.secret
    )
    harness = Harness(await aiohttp_client(create_app(settings, keys)), keys)
    therapist = await harness.therapist("r")
    (entry,) = therapist.joined["ice_servers"]
    assert entry["urls"] == [coturn.url]
    assert entry["username"].endswith(f":{therapist.id}")
    host, _ = await _allocate(coturn, entry["username"], entry["credential"])
    assert host == "127.0.0.1"
