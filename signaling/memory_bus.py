"""The in-memory MessageBus: every socket is on this process."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from signaling.bus import Deliver, Envelope, NodeHandler

# Envelopes kept for a participant whose socket is away (within the grace period).
MAILBOX_LIMIT = 256


class MemoryMessageBus:
    def __init__(self, node_id: str) -> None:
        self._node_id = node_id
        self._subscribers: dict[str, Deliver] = {}
        self._mailboxes: dict[str, deque[Envelope]] = {}
        self._handlers: list[NodeHandler] = []

    @property
    def node_id(self) -> str:
        return self._node_id

    async def publish(self, envelope: Envelope) -> None:
        deliver = self._subscribers.get(envelope.to)
        if deliver is not None:
            deliver(envelope)
            return
        box = self._mailboxes.get(envelope.to)
        if box is None:
            box = self._mailboxes[envelope.to] = deque(maxlen=MAILBOX_LIMIT)
        box.append(envelope)

    async def subscribe(self, participant_id: str, deliver: Deliver) -> None:
        self._subscribers[participant_id] = deliver
        for envelope in self._mailboxes.pop(participant_id, ()):
            deliver(envelope)

    async def unsubscribe(self, participant_id: str, deliver: Deliver) -> None:
        # `==`, not `is`: a bound method is a new object at each attribute access.
        if self._subscribers.get(participant_id) == deliver:
            del self._subscribers[participant_id]

    async def discard(self, participant_id: str) -> list[Envelope]:
        return list(self._mailboxes.pop(participant_id, ()))

    def on_node_message(self, handler: NodeHandler) -> None:
        self._handlers.append(handler)

    async def to_nodes(self, message: Mapping[str, Any]) -> None:
        for handler in self._handlers:
            handler(message)

    async def known_nodes(self) -> set[str]:
        return {self._node_id}

    async def live_nodes(self) -> set[str]:
        return {self._node_id}

    async def claim_dead_node(self, node: str) -> bool:
        return False  # one process: no other node to die

    async def forget_node(self, node: str) -> None:
        return None

    async def start(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._subscribers.clear()
        self._mailboxes.clear()
