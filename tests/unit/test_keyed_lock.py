from __future__ import annotations

import asyncio

from signaling.keyed_lock import KeyedLock
from tests.polling import eventually


async def test_one_holder_per_key_and_nothing_left_behind() -> None:
    locks = KeyedLock()
    order: list[str] = []
    release = asyncio.Event()

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await release.wait()
            order.append(f"{name}-")

    holders = asyncio.gather(hold("a", "1"), hold("a", "2"), hold("b", "3"))
    # Another key: alongside. The same key: one holder, the other waits.
    await eventually(lambda: len(order) >= 2, what="two holders")
    assert set(order) in ({"1+", "3+"}, {"2+", "3+"}), order
    release.set()
    await holders
    # Same key: strictly one after the other.
    a = [x for x in order if x[0] in "12"]
    assert a in (["1+", "1-", "2+", "2-"], ["2+", "2-", "1+", "1-"])
    # Rooms come and go: the table of locks must not grow with them.
    assert len(locks) == 0


async def test_released_on_error() -> None:
    locks = KeyedLock()
    try:
        async with locks.hold("a"):
            raise ValueError
    except ValueError:
        pass
    assert len(locks) == 0
    async with asyncio.timeout(1), locks.hold("a"):
        pass
