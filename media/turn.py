"""Short-lived TURN credentials in coturn's shared-secret scheme (the "TURN REST API").

coturn started with `use-auth-secret` and `static-auth-secret=<secret>` accepts any username
of the form `<expiry>:<name>`, where expiry is a Unix time in seconds, as long as the expiry
is still ahead and the password is base64(HMAC-SHA1(secret, username)). Nothing is stored on
either side: each participant gets its own pair in `joined`, and the TURN server checks it
with the secret it shares with this one.

The credentials are secrets for as long as they are valid: they go to the participant they
were minted for, and never into a log line (hence `repr=False`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from media.ice import IceServer

# RFC 7065: turn:host[:port][?transport=udp|tcp], turns: likewise; IPv6 hosts in brackets.
_TURN_URL_RE = re.compile(
    r"^turns?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\d{1,5}))?"
    r"(?:\?transport=(?:udp|tcp))?$"
)


def check_turn_url(url: str) -> str:
    """The URL itself if it is a TURN URL (`turn:` or `turns:`); ValueError if not."""
    m = _TURN_URL_RE.match(url)
    if m is None or (m["port"] is not None and not 0 < int(m["port"]) < 65536):
        raise ValueError(
            f"Not a TURN URL: {url!r} (expected turn:host[:port][?transport=udp|tcp] or turns:...)"
        )
    return url


def parse_turn_urls(value: str) -> tuple[str, ...]:
    """`SESSIONROOM_TURN_URLS`: TURN URLs separated by commas or spaces."""
    return tuple(check_turn_url(u) for u in re.split(r"[\s,]+", value.strip()) if u)


def turn_credentials(
    secret: str, participant_id: str, *, ttl: float, now: float
) -> tuple[str, str]:
    """(username, credential) valid until `now + ttl` for one participant.

    The username is `<expiry>:<participant id>`; the credential is
    base64(HMAC-SHA1(secret, username)), as coturn's `static-auth-secret` checks it.
    """
    if not secret:
        raise ValueError("TURN credentials need the shared secret.")
    if not participant_id:
        raise ValueError("TURN credentials need a participant id.")
    if ttl <= 0:
        raise ValueError("TURN credentials need a positive lifetime.")
    username = f"{int(now + ttl)}:{participant_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class TurnConfig:
    """The TURN servers every participant is offered, and how their credentials are minted."""

    urls: tuple[str, ...]
    secret: str = field(repr=False)
    ttl_seconds: float = 12 * 3600.0

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("TURN needs at least one turn: or turns: URL.")
        for url in self.urls:
            check_turn_url(url)
        if not self.secret:
            raise ValueError("TURN needs the secret it shares with coturn.")
        if self.ttl_seconds <= 0:
            raise ValueError("TURN credentials need a positive lifetime.")

    def server_for(self, participant_id: str, *, now: float) -> IceServer:
        """One IceServer with every TURN URL and this participant's own fresh credentials."""
        username, credential = turn_credentials(
            self.secret, participant_id, ttl=self.ttl_seconds, now=now
        )
        return IceServer(urls=self.urls, username=username, credential=credential)


def ice_servers_for(
    participant_id: str,
    static: Iterable[IceServer],
    turn: TurnConfig | None,
    *,
    now: float,
) -> tuple[IceServer, ...]:
    """The ICE servers for one participant: the configured (STUN) ones, then TURN if set."""
    servers = tuple(static)
    if turn is None:
        return servers
    return (*servers, turn.server_for(participant_id, now=now))
