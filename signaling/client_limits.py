"""Limits per client address: a cap on open WebSockets and a token bucket on REST calls
under /api/v1, and the client address they count by (X-Forwarded-For only when the peer is
a trusted proxy)."""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from signaling.config import Network, Settings
from signaling.core.errors import RateLimited, TooManyConnections
from signaling.metrics import Metrics
from signaling.ratelimit import TokenBucket

log = logging.getLogger("sessionroom.limits")

Clock = Callable[[], float]

# Addresses tracked at once, each way: past this the least recently seen is forgotten, so an
# attacker spraying addresses costs memory up to here and no further (~ a few MB).
MAX_TRACKED = 10_000
# A refusal is logged at most this often per address: a flood must not become a log flood.
LOG_EVERY_SECONDS = 60.0
# An IPv6 host usually holds a whole /64 and can pick any address in it.
IPV6_PREFIX = 64

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: the same client either way.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip: IPAddress, trusted: Sequence[Network]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy; then the
    right-most X-Forwarded-For entry that is not itself a trusted proxy (entries to its left
    were written by the client and prove nothing). A malformed entry on that walk, or no
    header at all, leaves the peer's address."""
    peer_ip = _ip(peer or "")
    if peer_ip is None:
        return peer or "unknown"
    if not _trusted(peer_ip, trusted):
        return str(peer_ip)
    # Several header lines are one list, in order (RFC 9110, 5.3).
    hops = [hop for line in forwarded_for for hop in line.split(",")]
    found = peer_ip
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:
            return str(peer_ip)
        found = ip
        if not _trusted(ip, trusted):
            break
    # Every hop a trusted proxy: the farthest one is the client (a proxy's own request).
    return str(found)


def limit_key(address: str) -> str:
    """What a limit counts by: the address, or for IPv6 its /64."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return address


class AddressBuckets:
    """A TokenBucket per key. A bucket idle long enough to have refilled is the same as a
    new one, so it is forgotten: only keys seen within the last burst / rate seconds are
    kept, and never more than `max_keys`."""

    def __init__(
        self,
        burst: int,
        per_second: float,
        clock: Clock = time.monotonic,
        max_keys: int = MAX_TRACKED,
    ) -> None:
        self._burst = burst
        self._rate = per_second
        self._clock = clock
        self._max_keys = max_keys
        self._refill_seconds = burst / per_second
        # Least recently used first, so the idle ones are at the front.
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """0 when the call may go ahead, else the seconds until it could."""
        self._forget_refilled()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._burst, self._rate, self._clock)
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return 0.0 if bucket.take() else bucket.retry_after()

    def _forget_refilled(self) -> None:
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if oldest.idle_seconds() < self._refill_seconds:
                return
            self._buckets.popitem(last=False)


class _RefusalLog:
    """Says when a refusal for a key may be logged: once per LOG_EVERY_SECONDS."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._logged: OrderedDict[str, float] = OrderedDict()  # oldest first

    def due(self, key: str) -> bool:
        now = self._clock()
        while self._logged:
            first_key, at = next(iter(self._logged.items()))
            if now - at < LOG_EVERY_SECONDS:
                break
            del self._logged[first_key]
        if key in self._logged:
            return False
        self._logged[key] = now
        if len(self._logged) > MAX_TRACKED:
            self._logged.popitem(last=False)
        return True


class OpenSocket:
    """One socket counted against its address; leaving the `with` gives its place back."""

    def __init__(self, limits: ClientLimits, key: str) -> None:
        self._limits = limits
        self.key = key

    def __enter__(self) -> OpenSocket:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limits.close_socket(self.key)


class ClientLimits:
    """One node's per-address state: sockets open now, and REST buckets."""

    def __init__(
        self,
        *,
        max_sockets: int,
        rest_burst: int,
        rest_per_second: float,
        trusted_proxies: Sequence[Network],
        metrics: Metrics,
        clock: Clock = time.monotonic,
    ) -> None:
        self._max_sockets = max_sockets
        self._trusted = tuple(trusted_proxies)
        self._metrics = metrics
        # Entries exist only while their address has a socket open: bounded by the sockets.
        self._sockets: dict[str, int] = {}
        self._rest = (
            AddressBuckets(rest_burst, rest_per_second, clock) if rest_per_second > 0 else None
        )
        self._log_socket = _RefusalLog(clock)
        self._log_rest = _RefusalLog(clock)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> ClientLimits:
        return cls(
            max_sockets=settings.max_sockets_per_address,
            rest_burst=settings.api_rate_burst,
            rest_per_second=settings.api_rate_per_second,
            trusted_proxies=settings.trusted_proxies,
            metrics=metrics,
        )

    def address(self, request: web.Request) -> str:
        return client_address(
            request.remote, request.headers.getall(hdrs.X_FORWARDED_FOR, []), self._trusted
        )

    def open_socket(self, request: web.Request) -> OpenSocket:
        """Counts a new socket against its address, or raises TooManyConnections."""
        key = limit_key(self.address(request))
        count = self._sockets.get(key, 0)
        if self._max_sockets and count >= self._max_sockets:
            error = TooManyConnections()
            self._metrics.errors[error.code] += 1
            if self._log_socket.due(key):
                log.warning(
                    "sockets refused: %d open from one address%s",
                    count,
                    self._hint(request),
                    extra={"code": error.code, "address": key},
                )
            raise error
        self._sockets[key] = count + 1
        return OpenSocket(self, key)

    def close_socket(self, key: str) -> None:
        count = self._sockets.get(key, 0) - 1
        if count > 0:
            self._sockets[key] = count
        else:
            self._sockets.pop(key, None)

    def rest_middleware(self, prefix: str) -> Middleware:
        """Answers 429 with Retry-After to an address past its REST budget, on every path
        under `prefix`: before authentication, so guessing keys is limited too."""

        @web.middleware
        async def limit_rest(request: web.Request, handler: Handler) -> web.StreamResponse:
            path = request.path
            if self._rest is None or not (path == prefix or path.startswith(prefix + "/")):
                return await handler(request)
            key = limit_key(self.address(request))
            wait = self._rest.take(key)
            if not wait:
                return await handler(request)
            seconds = max(1, math.ceil(wait))
            error = RateLimited(f"Too many requests from this address; try again in {seconds} s.")
            self._metrics.errors[error.code] += 1
            if self._log_rest.due(key):
                log.warning(
                    "REST calls refused: over the rate from one address%s",
                    self._hint(request),
                    extra={"code": error.code, "address": key},
                )
            return web.json_response(
                {"code": error.code, "message": error.message},
                status=error.http_status,
                headers={hdrs.RETRY_AFTER: str(seconds)},
            )

        return limit_rest

    def _hint(self, request: web.Request) -> str:
        # The usual cause of every client looking like one address: a proxy in front whose
        # address is not in --trusted-proxies, so its X-Forwarded-For was not believed.
        peer_ip = _ip(request.remote or "")
        if hdrs.X_FORWARDED_FOR in request.headers and (
            peer_ip is None or not _trusted(peer_ip, self._trusted)
        ):
            return (
                " (its X-Forwarded-For was ignored: if it is a proxy of yours, add its address "
                "to --trusted-proxies)"
            )
        return ""
