"""Markers for checks that something did not happen (see `Peer.before`): a message that must
reach a socket after whatever the act under test could have sent it."""

from __future__ import annotations

from typing import Any

from tests.conftest import Harness
from tests.support import Peer


async def outlast_grace(harness: Harness, room: str, observer: Peer) -> list[dict[str, Any]]:
    """What `observer`, in the room, is sent before the grace period of a socket dropped now
    runs out: the marker that every grace timer already running came to nothing.

    A therapist link of its own joins straight into the room and drops. Every grace timer
    runs for the same period, so the ones already running wake before this one, and one room
    changes one act at a time: whatever they caused reaches `observer` before this
    socket's `peer_left` (timeout).
    """
    later = await harness.therapist(room, name="Dr Later")
    await later.ws.close()
    return await observer.before("peer_left", participant=later.id, reason="timeout")
