"""The one dispatcher of committed room events.

After a store transition commits, the room service hands its events here; each subscriber
gets them in turn, in the order subscribed. Subscribers do not know each other: the wire
(signaling/wire.py), recording control (recordings/control.py), grace timers
(signaling/presence.py), metrics. A new consumer is a new subscriber.
"""

from __future__ import annotations

import logging
from typing import Protocol

from signaling.core.events import Committed

log = logging.getLogger("sessionroom.dispatch")


class Subscriber(Protocol):
    async def committed(self, batch: Committed) -> None: ...


class Dispatcher:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def dispatch(self, batch: Committed) -> None:
        """Every subscriber gets the batch, even when one before it fails; the first failure
        is raised afterwards (a bus that is down is the actor's `service_unavailable`)."""
        if not batch.events:
            return
        failure: Exception | None = None
        for subscriber in self._subscribers:
            try:
                await subscriber.committed(batch)
            except Exception as e:
                if failure is None:
                    failure = e
                else:
                    log.exception("room event subscriber failed", extra={"room": batch.room.id})
        if failure is not None:
            raise failure
