"""A client's message that races its own denial: found by bench/fuzz.py on two nodes.

The therapist on node A denies; the client's chat, on node B, is handled after the denial
is stored but before the `denied` crosses the bus. The client must be told `denied` (with
the therapist's text), as a resume would be, not `service_unavailable` (state lost), which
sends the page to join afresh.
"""

from __future__ import annotations

import pytest

from signaling.core.errors import Denied, StateLost
from signaling.rooms import Session
from tests.unit.test_room_service import _setup


async def test_a_message_after_its_denial_is_refused_as_denied() -> None:
    service, _, (therapist,), client = await _setup(therapists=1)
    await service.deny(therapist, client.participant_id, "Please book another time.")
    for attempt in (
        service.chat(client, "hello?"),
        service.signal(client, therapist.participant_id, {"kind": "candidate"}),
        service.recording_offer(client, "rec-1", "v=0"),
    ):
        with pytest.raises(Denied) as refused:
            await attempt
        assert refused.value.closes
        assert refused.value.message == "Please book another time."


async def test_a_denial_without_text_is_refused_with_the_default_message() -> None:
    service, _, (therapist,), client = await _setup(therapists=1)
    await service.deny(therapist, client.participant_id, "")
    with pytest.raises(Denied) as refused:
        await service.chat(client, "hello?")
    assert refused.value.message == Denied.default_message


async def test_a_participant_the_room_never_had_is_still_state_lost() -> None:
    service, _, (therapist,), _ = await _setup(therapists=1)
    stranger = Session("r", "never-here", 1, therapist.claims)
    with pytest.raises(StateLost):
        await service.chat(stranger, "hello?")
