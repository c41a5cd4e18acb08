"""ICE server configuration: what browsers and the server's aiortc peers are told to use.

aiortc falls back to a public STUN server when given no list, so every peer connection the
project makes gets the configured list, even when it is empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiortc import RTCConfiguration

_URL_RE = re.compile(r"^(stun|stuns|turn|turns):[^\s,]+$")


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    # A TURN credential is a secret while it is valid: keep it out of reprs and so of logs.
    credential: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("An ICE server needs at least one URL.")
        for url in self.urls:
            if not _URL_RE.match(url):
                raise ValueError(f"Not a STUN or TURN URL: {url!r}")

    def to_dict(self) -> dict[str, Any]:
        """The browser's RTCIceServer shape, as sent in `joined`."""
        out: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            out["username"] = self.username
        if self.credential is not None:
            out["credential"] = self.credential
        return out


def parse_ice_urls(value: str) -> tuple[IceServer, ...]:
    """`SESSIONROOM_ICE_SERVERS`: STUN/TURN URLs separated by commas or spaces."""
    urls = [u for u in re.split(r"[\s,]+", value.strip()) if u]
    return tuple(IceServer(urls=(u,)) for u in urls)


def rtc_configuration(servers: Iterable[IceServer]) -> RTCConfiguration:
    # Imported here, not at the top: the ICE list itself needs nothing of aiortc. (A node
    # loads aiortc at start-up all the same: the start-up `recover` in recordings/control.py
    # imports the recorder, which imports it.)
    from aiortc import RTCConfiguration, RTCIceServer

    return RTCConfiguration(
        iceServers=[
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in servers
        ]
    )


def ice_servers_json(servers: Sequence[IceServer]) -> list[dict[str, Any]]:
    return [s.to_dict() for s in servers]


def allow_loopback_candidates() -> None:
    """SESSIONROOM_ICE_LOOPBACK=1: let this process's aiortc peers gather 127.0.0.1.

    aioice leaves loopback out of its host candidates and has no option for it, so this
    wraps its address lookup for the whole process. For tests and local development only:
    a browser on another machine cannot reach 127.0.0.1.
    """
    import aioice.ice

    lookup = aioice.ice.get_host_addresses
    if getattr(lookup, "adds_loopback", False):
        return

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = lookup(use_ipv4, use_ipv6)
        return ["127.0.0.1", *addresses] if use_ipv4 else addresses

    with_loopback.adds_loopback = True  # type: ignore[attr-defined]
    aioice.ice.get_host_addresses = with_loopback
