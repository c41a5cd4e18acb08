from __future__ import annotations

import asyncio

from signaling.keyed_lock import KeyedLock


async def test_one_holder_per_key_and_nothing_left_behind() -> None:
    locks = KeyedLock()
    order: list[str] = []

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", "1"), hold("a", "2"), hold("b", "3"))
    # Same key: strictly one after the other. Another key: alongside.
    a = [x for x in order if x[0] in "12"]
    assert a in (["1+", "1-", "2+", "2-"], ["2+", "2-", "1+", "1-"])
    assert order.index("3+") < order.index("1-")
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
