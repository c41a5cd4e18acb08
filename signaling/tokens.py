"""Link tokens (JWT, HS256, with a key id so secrets can rotate) and resume tokens."""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from signaling.core.errors import (
    BadMessage,
    ConfigError,
    InvalidToken,
    TokenExpired,
    TokenNotYetValid,
)
from signaling.core.model import (
    ROLE_PERMISSIONS,
    Permission,
    Role,
    RoomSettings,
    clean_display_name,
    valid_room_id,
)

MIN_SECRET_BYTES = 32
ISSUER = "sessionroom"
# Clock skew tolerated between the practice's server that mints links and this one.
LEEWAY_SECONDS = 10
# The longest a link may be valid, from `nbf` to `exp`: minted or verified.
MAX_VALID_FOR = 30 * 24 * 3600
MAX_IDENTITY_CHARS = 128
# The practice's own id for a participant (`sub`): printable ASCII without spaces.
IDENTITY_RE = re.compile(rf"^[\x21-\x7e]{{1,{MAX_IDENTITY_CHARS}}}$")


def key_id(secret: bytes) -> str:
    """A public, stable name for a secret: lets several secrets be accepted at once."""
    return hashlib.sha256(b"sessionroom-kid:" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class LinkClaims:
    room: str
    role: Role
    identity: str
    name: str
    not_before: int
    expires: int
    link_id: str
    permissions: frozenset[Permission]
    # Settings for a room this link opens if the API never created it.
    room_settings: RoomSettings

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions


class KeyRing:
    """One secret signs; it and any older ones still verify (rotation)."""

    def __init__(self, signing_secret: bytes, verify_secrets: Iterable[bytes] = ()) -> None:
        for s in (signing_secret, *verify_secrets):
            if len(s) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"Every signing secret must be at least {MIN_SECRET_BYTES} bytes."
                )
        self._signing_kid = key_id(signing_secret)
        self._keys = {key_id(s): s for s in (signing_secret, *verify_secrets)}

    @property
    def signing_kid(self) -> str:
        return self._signing_kid

    def mint(
        self,
        *,
        room: str,
        role: Role,
        name: str,
        not_before: int,
        expires: int,
        identity: str | None = None,
        room_settings: RoomSettings | None = None,
        permissions: Iterable[Permission] | None = None,
    ) -> str:
        if not valid_room_id(room):
            raise BadMessage("A room id is 1 to 64 letters, digits, '-' or '_'.")
        if expires <= not_before:
            raise BadMessage("A link must expire after it becomes valid.")
        if expires - not_before > MAX_VALID_FOR:
            raise BadMessage("A link may be valid for at most 30 days.")
        if identity is not None and not IDENTITY_RE.fullmatch(identity):
            raise BadMessage("A participant's id is 1 to 128 printable characters, no spaces.")
        perms = ROLE_PERMISSIONS[role] if permissions is None else frozenset(permissions)
        if not perms <= ROLE_PERMISSIONS[role]:
            raise BadMessage(f"A {role} link cannot carry those permissions.")
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "room": room,
            "role": str(role),
            "sub": identity or f"{role}-{secrets.token_hex(8)}",
            "name": clean_display_name(name),
            "nbf": not_before,
            "exp": expires,
            "jti": secrets.token_urlsafe(12),
            "perms": sorted(str(p) for p in perms),
            "settings": (room_settings or RoomSettings()).to_dict(),
        }
        return jwt.encode(
            claims,
            self._keys[self._signing_kid],
            algorithm="HS256",
            headers={"kid": self._signing_kid},
        )

    def verify(self, token: object) -> LinkClaims:
        # A JWT is ASCII; anything else (a lone surrogate, say) could not even be encoded.
        if not isinstance(token, str) or not token or len(token) > 8192 or not token.isascii():
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken() from None
        secret = self._keys.get(str(header.get("kid", "")))
        if secret is None or header.get("alg") != "HS256":
            raise InvalidToken()
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                # The window is checked below, once its claims are known to be numbers.
                options={
                    "require": ["room", "role", "sub", "name", "nbf", "exp", "jti", "iss"],
                    "verify_exp": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise InvalidToken() from None
        link = _claims_from(claims)
        now = time.time()
        if link.expires <= now - LEEWAY_SECONDS:
            raise TokenExpired()
        if link.not_before > now + LEEWAY_SECONDS:
            raise TokenNotYetValid()
        return link


def _time(value: object) -> int:
    """A NumericDate as a whole number of seconds; text, booleans and non-finite numbers
    are not dates (pyjwt itself would read "1700000000" as one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken()
    if not math.isfinite(value):
        raise InvalidToken()
    return int(value)


def _claims_from(claims: dict[str, Any]) -> LinkClaims:
    not_before, expires = _time(claims["nbf"]), _time(claims["exp"])
    if expires - not_before > MAX_VALID_FOR:
        raise InvalidToken()
    try:
        role = Role(claims["role"])
        room = claims["room"]
        if not isinstance(room, str) or not valid_room_id(room):
            raise InvalidToken()
        perms = frozenset(Permission(p) for p in claims.get("perms", ROLE_PERMISSIONS[role]))
        if not perms <= ROLE_PERMISSIONS[role]:
            raise InvalidToken()
        identity = claims["sub"]
        if not isinstance(identity, str) or not IDENTITY_RE.fullmatch(identity):
            raise InvalidToken()
        return LinkClaims(
            room=room,
            role=role,
            identity=identity,
            name=clean_display_name(claims["name"]),
            not_before=not_before,
            expires=expires,
            link_id=str(claims["jti"]),
            permissions=perms,
            room_settings=RoomSettings.from_dict(claims.get("settings")),
        )
    except (ValueError, TypeError, KeyError, BadMessage):
        raise InvalidToken() from None


def new_resume_secret() -> tuple[str, str]:
    """A resume secret and the hash to store in the participant's place."""
    secret = secrets.token_urlsafe(24)
    return secret, resume_hash(secret)


def resume_token(participant_id: str, secret: str) -> str:
    return f"{participant_id}.{secret}"


def resume_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_resume_token(token: str) -> tuple[str, str]:
    participant_id, sep, secret = token.partition(".")
    if not sep or not participant_id or not secret:
        raise InvalidToken("The resume token is not valid.")
    return participant_id, secret


def resume_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(resume_hash(secret), stored_hash)
