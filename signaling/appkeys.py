"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from recordings.control import RecordingControl
from recordings.storage import RecordingStorage
from signaling.client_limits import ClientLimits
from signaling.config import Settings
from signaling.metrics import Metrics
from signaling.rooms import RoomService


class Closable(Protocol):
    """A live socket as the node sees it at shutdown."""

    async def shutdown(self) -> None: ...


@dataclass
class Lifecycle:
    """Set when the node starts shutting down, so /readyz turns away new traffic."""

    shutting_down: bool = False


SETTINGS = web.AppKey("settings", Settings)
SERVICE = web.AppKey("service", RoomService)
METRICS = web.AppKey("metrics", Metrics)
CONNECTIONS = web.AppKey("connections", set[Closable])
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
RECORDINGS = web.AppKey("recordings", RecordingStorage)
RECORDING_CONTROL = web.AppKey("recording_control", RecordingControl)
CLIENT_LIMITS = web.AppKey("client_limits", ClientLimits)
# The REST API's OpenAPI document, built once at start.
OPENAPI = web.AppKey("openapi", dict[str, Any])
