"""Settings, and the one table that maps each to its command-line flag and environment
variable (SESSIONROOM_*), so the two can never drift apart."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from media.ice import IceServer, parse_ice_urls
from media.turn import TurnConfig, check_turn_url, parse_turn_urls
from signaling.core.errors import ConfigError

# An API key or metrics token shorter than this is refused at start: a key is the whole of
# the practice's access to the API, so it must not be guessable (32 characters of
# token_urlsafe carry 192 bits).
MIN_KEY_CHARS = 32
MAKE_A_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sessionroom"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Where links point; defaults to http://host:port.
    base_url: str = ""
    # Secrets stay out of repr(), and so out of any log line or traceback that shows one.
    secret: str = field(default="", repr=False)
    previous_secrets: tuple[str, ...] = field(default=(), repr=False)
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    state_dir: Path = field(default_factory=_default_state_dir)
    grace_seconds: float = 30.0
    join_timeout_seconds: float = 10.0
    heartbeat_seconds: float = 20.0
    rate_burst: int = 50
    rate_per_second: float = 50.0
    log_format: str = "text"
    log_level: str = "info"
    ice_servers: tuple[IceServer, ...] = ()
    node_id: str = field(default_factory=lambda: secrets.token_hex(4))
    # How long an ended room's id stays refused, and an empty link-opened room is kept.
    room_retention_seconds: float = 24 * 3600.0
    # Recordings, their manifests and the consent ledger; None means <state_dir>/recordings.
    recordings_dir: Path | None = None
    recordings_retention_days: float = 0.0  # 0 keeps recordings until deleted
    recordings_where: str = "on this practice's own server"
    # Lets the server's aiortc peer offer 127.0.0.1: tests and local development only.
    ice_loopback: bool = False
    # Several nodes share rooms through Redis; memory (one node) when empty.
    redis_url: str = ""
    redis_prefix: str = "sessionroom"
    # TURN with short-lived credentials in coturn's shared-secret scheme.
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = field(default="", repr=False)
    turn_ttl_seconds: float = 12 * 3600.0
    # Limits per client address (0 turns each off). A clinic behind one NAT shares one
    # address: 50 sockets is a few dozen therapists at once, each with a reconnect in
    # flight, and the REST budget (a burst of 100, then 20 a second) outlasts a booking
    # system that creates a day's rooms at once, while a flood from one address stops there.
    max_sockets_per_address: int = 50
    api_rate_burst: int = 100
    api_rate_per_second: float = 20.0
    # Proxies whose X-Forwarded-For is believed (IPs or CIDRs); none: the peer's address.
    trusted_proxies: tuple[Network, ...] = ()
    # /metrics on a listener of its own (0: on the main listener), and/or behind a token.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    metrics_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ConfigError("port must be between 1 and 65535.")
        if self.log_format not in ("text", "json"):
            raise ConfigError("log format must be 'text' or 'json'.")
        for name in ("grace_seconds", "join_timeout_seconds", "heartbeat_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive.")
        if self.rate_burst < 1 or self.rate_per_second <= 0:
            raise ConfigError("rate limits must be positive.")
        for url in self.turn_urls:
            try:
                check_turn_url(url)
            except ValueError as e:
                raise ConfigError(f"--turn-urls: {e}") from None
        if self.turn_urls and not self.turn_secret:
            raise ConfigError("TURN URLs need SESSIONROOM_TURN_SECRET, the secret coturn shares.")
        if self.turn_ttl_seconds <= 0:
            raise ConfigError("turn_ttl_seconds must be positive.")
        if self.recordings_retention_days < 0:
            raise ConfigError("recordings retention must be 0 (keep) or a number of days.")
        for n, key in enumerate(self.api_keys, 1):
            if len(key) < MIN_KEY_CHARS:
                # Which key and how long, never the key itself.
                raise ConfigError(
                    f"SESSIONROOM_API_KEYS: API key {n} of {len(self.api_keys)} has "
                    f"{len(key)} characters; each needs at least {MIN_KEY_CHARS}. "
                    f"Make one with: {MAKE_A_KEY}"
                )
        if self.metrics_token and len(self.metrics_token) < MIN_KEY_CHARS:
            raise ConfigError(
                f"SESSIONROOM_METRICS_TOKEN has {len(self.metrics_token)} characters; it needs "
                f"at least {MIN_KEY_CHARS}. Make one with: {MAKE_A_KEY}"
            )
        if self.max_sockets_per_address < 0:
            raise ConfigError("max_sockets_per_address must be 0 (no cap) or more.")
        if self.api_rate_per_second < 0:
            raise ConfigError("api_rate_per_second must be 0 (no limit) or more.")
        if self.api_rate_per_second > 0 and self.api_rate_burst < 1:
            raise ConfigError("api_rate_burst must be at least 1.")
        if not 0 <= self.metrics_port < 65536:
            raise ConfigError("metrics_port must be 0 (the main listener) or a port number.")
        if self.metrics_port == self.port:
            raise ConfigError("metrics_port must differ from port.")

    @property
    def turn(self) -> TurnConfig | None:
        """TURN with per-participant credentials, or None when no TURN URL is configured."""
        if not self.turn_urls:
            return None
        return TurnConfig(self.turn_urls, self.turn_secret, self.turn_ttl_seconds)

    @property
    def recordings_path(self) -> Path:
        return self.recordings_dir or self.state_dir / "recordings"

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1 or 0")


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _networks(value: str) -> tuple[Network, ...]:
    """'10.0.0.5, 172.30.80.0/24, fd00::/8' -> networks; host bits set is an error, since
    it usually means a mistyped range."""
    return tuple(ipaddress.ip_network(v) for v in _csv(value))


@dataclass(frozen=True)
class Option:
    name: str  # the Settings field
    flag: str
    help: str
    parse: Callable[[str], Any] = str
    # Secrets are read from the environment only: a flag would show in `ps` to every user.
    env_only: bool = False

    @property
    def env(self) -> str:
        return "SESSIONROOM_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "address to listen on"),
    Option("port", "--port", "port to listen on", int),
    Option("base_url", "--base-url", "public URL that links point to"),
    Option("secret", "", "link signing secret, 32+ bytes", env_only=True),
    Option("previous_secrets", "", "older secrets still accepted", _csv, env_only=True),
    Option("api_keys", "", "REST API keys, comma-separated", _csv, env_only=True),
    Option("state_dir", "--state-dir", "folder for the generated secret", Path),
    Option("grace_seconds", "--grace-seconds", "how long a dropped socket keeps its place", float),
    Option("join_timeout_seconds", "--join-timeout-seconds", "time allowed for 'join'", float),
    Option("heartbeat_seconds", "--heartbeat-seconds", "WebSocket ping interval", float),
    Option("rate_burst", "--rate-burst", "messages allowed in a burst per socket", int),
    Option("rate_per_second", "--rate-per-second", "sustained messages per second", float),
    Option("log_format", "--log-format", "'text' or 'json'"),
    Option("log_level", "--log-level", "debug, info, warning or error"),
    Option("ice_servers", "--ice-servers", "STUN/TURN URLs, comma-separated", parse_ice_urls),
    Option("node_id", "--node-id", "this node's id (random by default)"),
    Option("recordings_dir", "--recordings-dir", "folder for recordings and the ledger", Path),
    Option(
        "recordings_retention_days",
        "--recordings-retention-days",
        "delete recordings older than this many days (0 keeps them)",
        float,
    ),
    Option("recordings_where", "--recordings-where", "where recordings are kept, as told"),
    Option("redis_url", "--redis-url", "Redis URL shared by every node (memory if unset)"),
    Option("redis_prefix", "--redis-prefix", "prefix of this deployment's Redis keys"),
    Option(
        "turn_urls", "--turn-urls", "TURN URLs for per-participant credentials", parse_turn_urls
    ),
    Option("turn_secret", "", "coturn's static-auth-secret", env_only=True),
    Option("turn_ttl_seconds", "--turn-ttl-seconds", "how long TURN credentials stay valid", float),
    Option(
        "ice_loopback",
        "",
        "1 lets the server's WebRTC peer use 127.0.0.1 (tests, local development)",
        _flag,
        env_only=True,
    ),
    Option(
        "max_sockets_per_address",
        "--max-sockets-per-address",
        "open WebSockets allowed per client address (0: no cap)",
        int,
    ),
    Option("api_rate_burst", "--api-rate-burst", "REST calls per client address in a burst", int),
    Option(
        "api_rate_per_second",
        "--api-rate-per-second",
        "sustained REST calls per client address (0: no limit)",
        float,
    ),
    Option(
        "trusted_proxies",
        "--trusted-proxies",
        "proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For names the client",
        _networks,
    ),
    Option("metrics_host", "--metrics-host", "address of the /metrics listener"),
    Option(
        "metrics_port",
        "--metrics-port",
        "serve /metrics on this port only, not on the main listener (0: main listener)",
        int,
    ),
    Option("metrics_token", "", "bearer token that /metrics requires", env_only=True),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for opt in OPTIONS:
        if not opt.env_only:
            parser.add_argument(
                opt.flag, dest=opt.name, default=None, help=f"{opt.help} [{opt.env}]"
            )
    parser.epilog = "Read from the environment only: " + ", ".join(
        f"{o.env} ({o.help})" for o in OPTIONS if o.env_only
    )


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Flags win over environment variables, which win over defaults."""
    values: dict[str, Any] = {}
    known = {f.name for f in fields(Settings)}
    for opt in OPTIONS:
        assert opt.name in known
        raw = getattr(args, opt.name, None)
        if raw is None:
            raw = environ.get(opt.env)
        if raw is None or raw == "":
            continue
        try:
            values[opt.name] = opt.parse(raw)
        except ValueError as e:
            raise ConfigError(f"{opt.flag or opt.env}: {e}") from None
    return Settings(**values)
