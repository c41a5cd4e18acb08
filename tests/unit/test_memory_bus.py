from __future__ import annotations

from signaling.bus import Envelope
from signaling.memory_bus import MAILBOX_LIMIT, MemoryMessageBus


class Inbox:
    def __init__(self) -> None:
        self.got: list[Envelope] = []

    def deliver(self, envelope: Envelope) -> None:
        self.got.append(envelope)


def env(to: str, n: int) -> Envelope:
    return Envelope(to=to, origin="n1", payload={"type": "signal", "n": n})


async def test_delivers_and_keeps_while_away() -> None:
    bus = MemoryMessageBus("n1")
    inbox = Inbox()
    await bus.subscribe("p", inbox.deliver)
    await bus.publish(env("p", 1))
    # A fresh bound method each time: unsubscribe must still recognise it.
    await bus.unsubscribe("p", inbox.deliver)
    await bus.publish(env("p", 2))
    await bus.publish(env("p", 3))
    assert [e.payload["n"] for e in inbox.got if e.payload] == [1]
    back = Inbox()
    await bus.subscribe("p", back.deliver)
    assert [e.payload["n"] for e in back.got if e.payload] == [2, 3]


async def test_unsubscribe_leaves_a_newer_subscriber_alone() -> None:
    bus = MemoryMessageBus("n1")
    old, new = Inbox(), Inbox()
    await bus.subscribe("p", old.deliver)
    await bus.subscribe("p", new.deliver)
    await bus.unsubscribe("p", old.deliver)
    await bus.publish(env("p", 1))
    assert len(new.got) == 1 and old.got == []


async def test_mailbox_is_bounded_and_discarded() -> None:
    bus = MemoryMessageBus("n1")
    for n in range(MAILBOX_LIMIT + 10):
        await bus.publish(env("p", n))
    inbox = Inbox()
    await bus.subscribe("p", inbox.deliver)
    assert len(inbox.got) == MAILBOX_LIMIT and inbox.got[0].payload == {"type": "signal", "n": 10}
    await bus.unsubscribe("p", inbox.deliver)
    await bus.publish(env("p", 0))
    await bus.discard("p")
    again = Inbox()
    await bus.subscribe("p", again.deliver)
    assert again.got == []


def test_envelope_round_trips_through_a_dict() -> None:
    e = Envelope(to="p", origin="n", payload={"a": [1]}, close_code=1000, connection=3)
    assert Envelope.from_dict(e.to_dict()) == e
