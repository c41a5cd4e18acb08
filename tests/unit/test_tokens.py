from __future__ import annotations

import time

import jwt
import pytest

from signaling.core.errors import (
    BadMessage,
    ConfigError,
    InvalidToken,
    TokenExpired,
    TokenNotYetValid,
)
from signaling.core.model import Permission, Role, RoomSettings
from signaling.tokens import (
    MAX_VALID_FOR,
    KeyRing,
    key_id,
    new_resume_secret,
    resume_matches,
    resume_token,
    split_resume_token,
)

OLD = b"old-secret-that-is-long-enough-0123456789"
NEW = b"new-secret-that-is-long-enough-0123456789"


def mint(keys: KeyRing, **kw: object) -> str:
    now = int(time.time())
    args: dict[str, object] = {
        "room": "room-1",
        "role": Role.CLIENT,
        "name": "Alex",
        "not_before": now,
        "expires": now + 600,
    }
    args.update(kw)
    return keys.mint(**args)  # type: ignore[arg-type]


def test_round_trip_carries_every_claim() -> None:
    keys = KeyRing(NEW)
    settings = RoomSettings(max_clients=2, waiting_room=False)
    token = mint(keys, role=Role.THERAPIST, identity="clinician-7", room_settings=settings)
    assert jwt.get_unverified_header(token)["kid"] == key_id(NEW)
    claims = keys.verify(token)
    assert claims.room == "room-1" and claims.role is Role.THERAPIST
    assert claims.identity == "clinician-7" and claims.name == "Alex"
    assert claims.room_settings == settings
    assert claims.may(Permission.ADMIT) and claims.expires - claims.not_before == 600
    assert claims.link_id


def test_client_permissions_are_limited() -> None:
    keys = KeyRing(NEW)
    claims = keys.verify(mint(keys))
    assert not claims.may(Permission.ADMIT) and claims.may(Permission.SIGNAL)
    with pytest.raises(Exception, match="cannot carry"):
        mint(keys, permissions={Permission.ADMIT})
    # A token claiming more than its role allows is refused even if correctly signed.
    forged = _signed({"room": "r", "perms": ["admit"]})
    with pytest.raises(InvalidToken):
        keys.verify(forged)


def test_rotation_old_secret_still_verifies() -> None:
    old_token = mint(KeyRing(OLD))
    rotated = KeyRing(NEW, [OLD])
    assert rotated.verify(old_token).room == "room-1"
    assert jwt.get_unverified_header(mint(rotated))["kid"] == key_id(NEW)
    with pytest.raises(InvalidToken):
        KeyRing(NEW).verify(old_token)


@pytest.mark.parametrize(
    ("offset", "error"),
    [(-7200, TokenExpired), (3600, TokenNotYetValid)],
)
def test_time_window(offset: int, error: type[Exception]) -> None:
    keys = KeyRing(NEW)
    now = int(time.time()) + offset
    with pytest.raises(error):
        keys.verify(mint(keys, not_before=now, expires=now + 600))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", None, 7, "x" * 9000])
def test_malformed(token: object) -> None:
    with pytest.raises(InvalidToken):
        KeyRing(NEW).verify(token)


def test_short_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        KeyRing(b"short")
    with pytest.raises(ConfigError):
        KeyRing(NEW, [b"short"])


def test_resume_tokens() -> None:
    secret, stored = new_resume_secret()
    pid, got = split_resume_token(resume_token("p1", secret))
    assert pid == "p1" and resume_matches(got, stored)
    assert not resume_matches("guess", stored)
    with pytest.raises(InvalidToken):
        split_resume_token("no-dot")


def _signed(claims: dict[str, object]) -> str:
    now = int(time.time())
    body: dict[str, object] = {
        "iss": "sessionroom",
        "room": "r",
        "role": "client",
        "sub": "s",
        "name": "N",
        "nbf": now,
        "exp": now + 60,
        "jti": "j",
    }
    body.update(claims)
    return jwt.encode(body, NEW, algorithm="HS256", headers={"kid": key_id(NEW)})


@pytest.mark.parametrize(
    "claims",
    [
        {"nbf": str(int(time.time()))},
        {"exp": str(int(time.time()) + 60)},
        {"nbf": True},
        {"exp": None},
        {"exp": [1]},
        # Longer than any link the API or the CLI may mint.
        {"nbf": int(time.time()), "exp": int(time.time()) + MAX_VALID_FOR + 61},
        # A future window with text for a date is invalid, not "not yet valid".
        {"nbf": str(int(time.time()) + 3600), "exp": int(time.time()) + 7200},
    ],
)
def test_window_claims_must_be_numbers_within_the_longest_lifetime(
    claims: dict[str, object],
) -> None:
    with pytest.raises(InvalidToken):
        KeyRing(NEW).verify(_signed(claims))


def test_the_longest_lifetime_is_accepted_and_minting_longer_is_refused() -> None:
    keys = KeyRing(NEW)
    now = int(time.time())
    keys.verify(_signed({"nbf": now, "exp": now + MAX_VALID_FOR}))
    with pytest.raises(BadMessage):
        mint(keys, not_before=now, expires=now + MAX_VALID_FOR + 1)
