"""TURN credentials in coturn's shared-secret scheme, and the ICE list each peer is given."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from media.ice import IceServer, ice_servers_json
from media.turn import (
    TurnConfig,
    check_turn_url,
    ice_servers_for,
    parse_turn_urls,
    turn_credentials,
)
from recordings.ledger import MemoryLedger
from recordings.storage import RecordingStorage
from recordings.writer import RecordingWriter
from signaling.config import Settings, add_arguments, settings_from
from signaling.core.errors import ConfigError

SECRET = "coturn-shared-secret"
STUN = IceServer(urls=("stun:stun.sessionroom.test:3478",))
TURN_URLS = ("turn:turn.sessionroom.test:3478", "turns:turn.sessionroom.test:5349?transport=tcp")


def test_credentials_are_coturns_rest_api_pair() -> None:
    username, credential = turn_credentials(SECRET, "k3J9abc", ttl=3600, now=1_700_000_000.7)
    # expiry:participant, the expiry a whole Unix second `ttl` ahead of now.
    assert username == "1700003600:k3J9abc"
    # Worked out independently: base64(HMAC-SHA1(secret, username)).
    mac = hmac.new(b"coturn-shared-secret", b"1700003600:k3J9abc", hashlib.sha1).digest()
    assert credential == base64.b64encode(mac).decode()
    assert len(base64.b64decode(credential)) == 20  # a SHA-1 digest


def test_a_known_vector() -> None:
    # Fixed inputs and output, so that a change of encoding or hash is caught. The output
    # came from `printf 1060:alice | openssl dgst -sha1 -hmac secret -binary | base64`.
    username, credential = turn_credentials("secret", "alice", ttl=60, now=1000)
    assert (username, credential) == ("1060:alice", "hjRtn0ot3SN3N/ZTliyVxIvRyZs=")
    expected = hmac.new(b"secret", b"1060:alice", hashlib.sha1).digest()
    assert base64.b64decode(credential) == expected


def test_credentials_differ_by_participant_expiry_and_secret() -> None:
    a = turn_credentials(SECRET, "alice", ttl=600, now=1000)
    assert turn_credentials(SECRET, "bob", ttl=600, now=1000) != a
    assert turn_credentials(SECRET, "alice", ttl=600, now=2000)[1] != a[1]
    assert turn_credentials("another secret", "alice", ttl=600, now=1000)[1] != a[1]


@pytest.mark.parametrize(
    ("secret", "participant", "ttl"), [("", "alice", 60), (SECRET, "", 60), (SECRET, "a", 0)]
)
def test_credentials_need_secret_participant_and_lifetime(
    secret: str, participant: str, ttl: float
) -> None:
    with pytest.raises(ValueError):
        turn_credentials(secret, participant, ttl=ttl, now=1000)


def test_each_participant_gets_the_static_servers_and_its_own_turn_entry() -> None:
    turn = TurnConfig(TURN_URLS, SECRET, ttl_seconds=600)
    servers = ice_servers_for("alice", (STUN,), turn, now=1000)
    assert servers[0] == STUN
    assert len(servers) == 2
    relay = servers[1]
    assert relay.urls == TURN_URLS  # one entry with every TURN URL
    assert (relay.username, relay.credential) == turn_credentials(
        SECRET, "alice", ttl=600, now=1000
    )
    assert ice_servers_json(servers)[1] == {
        "urls": list(TURN_URLS),
        "username": "1600:alice",
        "credential": relay.credential,
    }
    bob = ice_servers_for("bob", (STUN,), turn, now=1000)[1]
    assert bob.username == "1600:bob" and bob.credential != relay.credential


def test_without_turn_the_static_list_is_all() -> None:
    assert ice_servers_for("alice", (STUN,), None, now=1000) == (STUN,)
    assert ice_servers_for("alice", (), None, now=1000) == ()


def test_secrets_stay_out_of_reprs() -> None:
    turn = TurnConfig(TURN_URLS, SECRET, ttl_seconds=600)
    relay = turn.server_for("alice", now=1000)
    assert relay.credential is not None
    assert SECRET not in repr(turn)
    assert relay.credential not in repr(relay)
    settings = Settings(turn_urls=TURN_URLS, turn_secret=SECRET)
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "turn:turn.example.org",
        "turn:turn.example.org:3478",
        "turn:192.0.2.1:3478?transport=udp",
        "turns:turn.example.org:5349?transport=tcp",
        "turn:[2001:db8::1]:3478",
    ],
)
def test_turn_urls_accepted(url: str) -> None:
    assert check_turn_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "stun:stun.example.org:3478",
        "http://turn.example.org",
        "turn:",
        "turn:host:0",
        "turn:host:70000",
        "turn:host?transport=sctp",
        "turn:user@host",
        "turn:host name",
    ],
)
def test_turn_urls_refused(url: str) -> None:
    with pytest.raises(ValueError, match="Not a TURN URL"):
        check_turn_url(url)


def test_settings_check_turn_at_config_time() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    env = {
        "SESSIONROOM_TURN_URLS": "turn:a.example:3478, turns:b.example:5349",
        "SESSIONROOM_TURN_SECRET": SECRET,
    }
    s = settings_from(parser.parse_args(["--turn-ttl-seconds", "600"]), env)
    assert s.turn == TurnConfig(("turn:a.example:3478", "turns:b.example:5349"), SECRET, 600)
    assert parse_turn_urls("turn:a turn:b") == ("turn:a", "turn:b")
    with pytest.raises(ConfigError, match=r"--turn-urls: Not a TURN URL: 'stun:a\.example'"):
        settings_from(parser.parse_args(["--turn-urls", "stun:a.example"]), env)
    with pytest.raises(ConfigError, match="Not a TURN URL"):
        Settings(turn_urls=("http://a.example",), turn_secret=SECRET)
    with pytest.raises(ConfigError, match="SESSIONROOM_TURN_SECRET"):
        settings_from(parser.parse_args(["--turn-urls", "turn:a.example"]), {})
    with pytest.raises(ConfigError, match="turn_ttl_seconds"):
        Settings(turn_urls=("turn:a.example",), turn_secret=SECRET, turn_ttl_seconds=0)
    assert Settings().turn is None


def test_the_servers_own_peer_uses_turn_as_its_node(tmp_path: Path) -> None:
    ledger = MemoryLedger()
    writer = RecordingWriter(
        RecordingStorage(tmp_path, ledger),
        ledger,
        ice_servers=(STUN,),
        turn=TurnConfig(TURN_URLS, SECRET, ttl_seconds=600),
        node_id="n1",
        clock=lambda: 1000.0,
    )
    servers = writer.ice_servers()
    assert servers[0] == STUN
    assert (servers[1].username, servers[1].credential) == turn_credentials(
        SECRET, "node-n1", ttl=600, now=1000
    )
    plain = RecordingWriter(
        RecordingStorage(tmp_path, ledger), ledger, ice_servers=(STUN,), clock=lambda: 1000.0
    )
    assert plain.ice_servers() == (STUN,)
