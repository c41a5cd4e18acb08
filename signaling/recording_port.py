"""What the room service needs of recording control, defined here by the consumer.

recordings/control.py provides it on a node that records; `NoRecording` stands in where
nothing is recorded (a room service built without recording, as in some tests).
"""

from __future__ import annotations

from typing import Protocol

from signaling.core.errors import RecordingNotActive
from signaling.core.events import Committed
from signaling.core.model import RoomState


class RecordingControl(Protocol):
    @property
    def available(self) -> bool:
        """Whether this node can record (a therapist's request is refused otherwise)."""
        ...

    @property
    def rooms_recording(self) -> frozenset[str]:
        """Rooms whose recording this node is writing: stopped first when the node stops."""
        ...

    async def committed(self, batch: Committed) -> None:
        """Committed room events (it subscribes to the dispatcher before the wire)."""
        ...

    async def offer(self, room: RoomState, participant: str, recording: str, sdp: str) -> str:
        """A browser's recording leg: the answer's SDP."""
        ...

    async def close(self) -> None: ...


class NoRecording:
    available = False
    rooms_recording: frozenset[str] = frozenset()

    async def committed(self, batch: Committed) -> None:
        return None

    async def offer(self, room: RoomState, participant: str, recording: str, sdp: str) -> str:
        raise RecordingNotActive()

    async def close(self) -> None:
        return None
