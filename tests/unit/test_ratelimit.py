from __future__ import annotations

from signaling.ratelimit import TokenBucket


def test_burst_then_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(burst=3, per_second=2.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert [bucket.take() for _ in range(2)] == [True, False]
    now[0] += 100  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3
