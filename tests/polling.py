"""Synchronisation for tests: poll a condition until it holds, with a deadline.

A test waits for what it needs to see, never for a fixed time: `eventually` returns as soon
as the condition holds (so a fast run stays fast) and fails with the last value seen when the
deadline passes (so a slow run waits longer, rather than failing for the wrong reason).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

DEADLINE = 10.0


async def eventually(
    condition: Callable[[], object],
    timeout: float = DEADLINE,
    *,
    every: float = 0.01,
    what: str = "",
) -> None:
    """Returns once `condition()` (sync, or async: awaited) is truthy, polled every `every`
    seconds; AssertionError if it is still falsy after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{what or 'the condition'} did not hold within {timeout} s")
        await asyncio.sleep(every)
