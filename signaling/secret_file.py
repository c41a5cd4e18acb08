"""The signing secret: from configuration, or generated once into a local state file."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from signaling.config import Settings
from signaling.core.errors import ConfigError
from signaling.tokens import MIN_SECRET_BYTES, KeyRing

SECRET_FILE = "secret"


@dataclass(frozen=True)
class ResolvedSecret:
    secret: bytes
    # Set when the secret came from the state file; `created` when this call made it.
    path: Path | None = None
    created: bool = False


def resolve_secret(settings: Settings) -> ResolvedSecret:
    if settings.secret:
        return ResolvedSecret(settings.secret.encode())
    path = settings.state_dir / SECRET_FILE
    try:
        return ResolvedSecret(_read(path), path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(48)  # 48 random bytes
    try:
        # O_EXCL: two processes starting at once cannot both write a different secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return ResolvedSecret(_read(path), path)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return ResolvedSecret(value.encode(), path, created=True)


def _read(path: Path) -> bytes:
    value = path.read_text().strip().encode()
    if len(value) < MIN_SECRET_BYTES:
        raise ConfigError(f"The secret in {path} is shorter than {MIN_SECRET_BYTES} bytes.")
    return value


def key_ring(settings: Settings, resolved: ResolvedSecret) -> KeyRing:
    return KeyRing(resolved.secret, [s.encode() for s in settings.previous_secrets])
