"""The one place that picks the store and bus implementations from settings."""

from __future__ import annotations

from signaling.bus import MessageBus
from signaling.config import Settings
from signaling.memory_bus import MemoryMessageBus
from signaling.memory_store import MemoryRoomStore
from signaling.store import RoomStore


def make_backends(settings: Settings) -> tuple[RoomStore, MessageBus]:
    return MemoryRoomStore(), MemoryMessageBus(settings.node_id)
