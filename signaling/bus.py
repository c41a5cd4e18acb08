"""MessageBus: delivery to a participant wherever its socket is.

The service addresses participants by id; the bus finds the node holding that socket
(memory_bus: this process; redis_bus: pub/sub). Envelopes carry the origin node id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Envelope:
    to: str
    origin: str
    # The wire message to send; None for a pure instruction (close a replaced socket).
    payload: Mapping[str, Any] | None
    # Close the socket after sending, with this WebSocket close code.
    close_code: int | None = None
    close_reason: str = ""
    # Only for this connection number of the participant (None: whichever is current).
    connection: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "origin": self.origin,
            "payload": dict(self.payload) if self.payload is not None else None,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
            "connection": self.connection,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Envelope:
        return cls(
            to=data["to"],
            origin=data["origin"],
            payload=data["payload"],
            close_code=data["close_code"],
            close_reason=data["close_reason"],
            connection=data["connection"],
        )


Deliver = Callable[[Envelope], None]
# An instruction for every node (e.g. stop writing a recording wherever its legs are).
NodeHandler = Callable[[Mapping[str, Any]], None]
# Given to this node's own handlers (never sent) when it may have missed some instructions:
# its subscription was made again.
RESUBSCRIBED = "bus_resubscribed"


class MessageBus(Protocol):
    @property
    def node_id(self) -> str: ...

    async def publish(self, envelope: Envelope) -> None:
        """Deliver to the participant's socket, or keep it until the socket is back."""
        ...

    async def subscribe(self, participant_id: str, deliver: Deliver) -> None:
        """Route this participant's envelopes to `deliver`, first any that were kept."""
        ...

    async def unsubscribe(self, participant_id: str, deliver: Deliver) -> None:
        """Stop routing to `deliver`, if it is still the one subscribed."""
        ...

    async def discard(self, participant_id: str) -> list[Envelope]:
        """The participant is gone: drop whatever was kept for it, and return it (never
        delivered: a chat among it is told to its sender)."""
        ...

    def on_node_message(self, handler: NodeHandler) -> None:
        """Run `handler` for every message sent with `to_nodes`, and with
        `{"kind": RESUBSCRIBED}` when this node may have missed some."""
        ...

    async def to_nodes(self, message: Mapping[str, Any]) -> None:
        """To every node, this one first (and at once)."""
        ...

    async def known_nodes(self) -> set[str]: ...

    async def live_nodes(self) -> set[str]:
        """Nodes whose heartbeat is current."""
        ...

    async def claim_dead_node(self, node: str) -> bool:
        """True for the one node that should take care of a dead node's participants."""
        ...

    async def forget_node(self, node: str) -> None: ...

    async def start(self) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
