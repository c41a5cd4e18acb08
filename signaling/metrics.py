"""Counters and gauges, rendered in the Prometheus text format (no client library needed
for a handful of series)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from signaling.core.events import Committed
from signaling.store import StoreStats

if TYPE_CHECKING:
    from recordings.writer import RecordingLoad


class Metrics:
    def __init__(self) -> None:
        self.sockets = 0
        self.messages: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.joins: Counter[str] = Counter()
        self.room_events: Counter[str] = Counter()

    async def committed(self, batch: Committed) -> None:
        """A subscriber of committed room events: counts them by type."""
        self.room_events.update(e.kind for e in batch.events)

    def render(self, stats: StoreStats, recording: RecordingLoad) -> str:
        lines = [
            "# HELP sessionroom_sockets Open WebSocket connections on this node.",
            "# TYPE sessionroom_sockets gauge",
            f"sessionroom_sockets {self.sockets}",
            "# HELP sessionroom_rooms Rooms open (not ended).",
            "# TYPE sessionroom_rooms gauge",
            f"sessionroom_rooms {stats.rooms}",
            "# HELP sessionroom_waiting_clients Clients in a waiting room.",
            "# TYPE sessionroom_waiting_clients gauge",
            f"sessionroom_waiting_clients {stats.waiting}",
            "# HELP sessionroom_participants Participants waiting or in a room.",
            "# TYPE sessionroom_participants gauge",
            f"sessionroom_participants {stats.participants}",
            "# HELP sessionroom_recordings Recordings being written on this node.",
            "# TYPE sessionroom_recordings gauge",
            f"sessionroom_recordings {recording.recordings}",
            "# HELP sessionroom_recording_legs Recording legs (server peer connections) open.",
            "# TYPE sessionroom_recording_legs gauge",
            f"sessionroom_recording_legs {recording.legs}",
        ]
        lines += _counter(
            "sessionroom_messages_total", "Messages received, by type.", "type", self.messages
        )
        lines += _counter(
            "sessionroom_errors_total", "Errors sent to clients, by code.", "code", self.errors
        )
        lines += _counter(
            "sessionroom_joins_total", "Successful joins, by role.", "role", self.joins
        )
        lines += _counter(
            "sessionroom_room_events_total",
            "Room events committed by this node, by type.",
            "type",
            self.room_events,
        )
        return "\n".join(lines) + "\n"


def _counter(name: str, help_text: str, label: str, counts: Counter[str]) -> list[str]:
    out = [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
    out += [f'{name}{{{label}="{key}"}} {value}' for key, value in sorted(counts.items())]
    return out
