"""Settings, and the one table that maps each to its command-line flag and environment
variable (SESSIONROOM_*), so the two can never drift apart."""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from media.ice import IceServer, parse_ice_urls
from media.turn import TurnConfig, check_turn_url, parse_turn_urls
from signaling.errors import ConfigError


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sessionroom"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Where links point; defaults to http://host:port.
    base_url: str = ""
    secret: str = ""
    previous_secrets: tuple[str, ...] = ()
    api_keys: tuple[str, ...] = ()
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
