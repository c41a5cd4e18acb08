"""A token bucket: a burst, then a steady rate (per socket, and per client address)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, burst: int, per_second: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until `take` would succeed: 0 when it would now."""
        tokens = self._tokens + (self._clock() - self._last) * self._rate
        return max(0.0, (1.0 - tokens) / self._rate)

    def idle_seconds(self) -> float:
        """Seconds since the last `take`; after burst / per_second the bucket is full again,
        the same as a new one."""
        return self._clock() - self._last
