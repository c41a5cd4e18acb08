from __future__ import annotations

from tests.conftest import Harness


async def test_signal_reaches_the_named_peer(harness: Harness) -> None:
    therapist, client = await harness.in_call("room1")
    await therapist.send(type="signal", to=client.id, data={"sdp": "x"})
    got = await client.expect("signal")
    assert got == {"type": "signal", "from": therapist.id, "data": {"sdp": "x"}}
