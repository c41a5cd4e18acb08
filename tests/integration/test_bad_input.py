"""Bad tokens and bad messages: a stable error code each, and no harm to anyone else."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping

import pytest
from aiohttp import WSMsgType

from signaling.core.model import Role
from signaling.tokens import KeyRing
from tests.conftest import Harness


async def _refused(harness: Harness, token: object, code: str) -> None:
    peer = await harness.open()
    await peer.send(type="join", token=token)
    await peer.expect_error(code)
    assert await peer.expect_closed() == 1008


async def test_bad_tokens_each_have_their_code(harness: Harness) -> None:
    now = time.time()
    await _refused(harness, "not-a-jwt", "invalid_token")
    await _refused(harness, 42, "bad_message")
    await _refused(
        harness, harness.token("r", not_before=now - 7200, valid_for=3600), "token_expired"
    )
    await _refused(harness, harness.token("r", not_before=now + 3600), "token_not_yet_valid")
    other_keys = KeyRing(b"another-secret-of-enough-length-0123456789")
    forged = other_keys.mint(
        room="r", role=Role.THERAPIST, name="Mallory", not_before=int(now), expires=int(now) + 60
    )
    await _refused(harness, forged, "invalid_token")
    # Same key id, tampered payload: the signature no longer matches.
    good = harness.token("r")
    head, payload, sig = good.split(".")
    await _refused(harness, f"{head}.{payload[:-2]}AA.{sig}", "invalid_token")


async def test_unsigned_token_is_refused(harness: Harness) -> None:
    import base64

    def b64(d: Mapping[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    now = int(time.time())
    header = {"alg": "none", "kid": harness.keys.signing_kid}
    claims = {
        "room": "r",
        "role": "therapist",
        "sub": "x",
        "name": "X",
        "nbf": now,
        "exp": now + 60,
    }
    await _refused(harness, f"{b64(header)}.{b64(claims)}.", "invalid_token")


async def test_join_must_come_first_and_in_time(harness: Harness) -> None:
    peer = await harness.open()
    await peer.send(type="chat", text="hello")
    await peer.expect_error("not_allowed")
    assert await peer.expect_closed() == 1008

    silent = await harness.open()
    await silent.expect_error("join_timeout")  # join_timeout_seconds is 1 in tests
    assert await silent.expect_closed() == 1008


async def test_second_join_is_refused_and_the_socket_lives(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    await client.send(type="join", token=harness.token("r"))
    await client.expect_error("not_allowed")
    await client.send(type="chat", text="still here")
    assert (await therapist.expect("chat"))["text"] == "still here"


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[1, 2]",
        '"text"',
        "{}",
        '{"type": 7}',
        '{"type": "teleport"}',
        '{"type": "signal", "to": "x"}',
        '{"type": "signal", "to": 5, "data": {}}',
        '{"type": "signal", "to": "x", "data": "sdp"}',
        '{"type": "admit"}',
        '{"type": "chat", "text": ["a"]}',
        '{"type": "deny", "participant": "p", "message": 3}',
        '{"type": "lobby_notice", "text": null}',
    ],
)
async def test_malformed_messages_get_bad_message(harness: Harness, raw: str) -> None:
    therapist, client = await harness.in_call("r")
    await therapist.ws.send_str(raw)
    await therapist.expect_error("bad_message")
    # The connection survives and still works.
    await therapist.send(type="signal", to=client.id, data={"after": raw})
    assert (await client.expect("signal"))["data"] == {"after": raw}


async def test_binary_frames_get_bad_message(harness: Harness) -> None:
    therapist, _client = await harness.in_call("r")
    await therapist.ws.send_bytes(b"\x00\x01")
    await therapist.expect_error("bad_message")


async def test_oversized_messages(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    big = {"type": "signal", "to": client.id, "data": {"blob": "x" * (64 * 1024)}}
    await therapist.ws.send_str(json.dumps(big))
    await therapist.expect_error("message_too_large")
    await therapist.send(type="signal", to=client.id, data={"small": True})
    assert (await client.expect("signal"))["data"] == {"small": True}
    # Far past the limit, the WebSocket layer closes with 1009 (message too big).
    await therapist.ws.send_str("x" * (300 * 1024))
    msg = await therapist.ws.receive(timeout=5)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert therapist.ws.close_code == 1009


async def test_message_bursts_are_rate_limited(harness: Harness) -> None:
    therapist, client = await harness.in_call("r")
    for i in range(80):
        await therapist.send(type="signal", to=client.id, data={"i": i})
    # The budget refills with time: the test is what a later message meets, so it waits.
    await asyncio.sleep(1.1)
    await therapist.send(type="signal", to=client.id, data={"later": True})
    # Every message is either relayed or refused with its own error: none silently lost.
    # The socket's messages are handled in order, so all 80 outcomes come before the later
    # signal's relay; and the client's reply comes after every refusal sent to the therapist.
    relayed = await client.before("signal", data={"later": True})
    await client.send(type="signal", to=therapist.id, data={"marker": True})
    told = await therapist.before("signal", data={"marker": True})
    limited = [m for m in told if m["type"] == "error"]
    assert {m["type"] for m in relayed} == {"signal"}
    assert [m["data"]["i"] for m in relayed] == sorted(m["data"]["i"] for m in relayed)
    assert {m["code"] for m in limited} == {"rate_limited"}
    assert len(relayed) + len(limited) == 80
    # The burst of 50 (less the `admit` already sent) goes through, plus what refilled.
    assert len(relayed) >= 49 and limited


async def test_garbage_in_one_room_does_not_touch_another(harness: Harness) -> None:
    t1, c1 = await harness.in_call("quiet-room")
    t2, _c2 = await harness.in_call("noisy-room")
    for raw in ("{", '{"type":"x"}', f'{{"type":"signal","to":"{c1.id}","data":{{}}}}'):
        await t2.ws.send_str(raw)
    await t2.ws.send_bytes(b"zz")
    # Each is refused, in order: once the last is answered, the node is done with them all.
    codes = [(await t2.expect("error"))["code"] for _ in range(4)]
    assert codes == ["bad_message", "bad_message", "not_found", "bad_message"]
    await t1.send(type="signal", to=c1.id, data={"ok": True})
    # The first C1 hears after all that is T1's signal, from T1.
    assert await c1.before("signal", data={"ok": True}, from_=t1.id) == []


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    "raw",
    [
        DEEP,
        '{"type": "signal", "to": "x", "data": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"type": "signal", "to": "x", "data": ' + '{"a":' * 40 + "1" + "}" * 40 + "}",
        '{"type": "chat", "text": NaN}',
        '{"type": "signal", "to": "x", "data": {"n": Infinity}}',
        '{"type": "signal", "to": "x", "data": {"n": -Infinity}}',
    ],
)
async def test_deep_or_non_finite_messages_get_bad_message_and_the_socket_lives(
    harness: Harness, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    therapist, client = await harness.in_call("r")
    await therapist.ws.send_str(raw)
    await therapist.expect_error("bad_message")
    await therapist.send(type="signal", to=client.id, data={"after": True})
    assert (await client.expect("signal"))["data"] == {"after": True}
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


@pytest.mark.parametrize("raw", [DEEP, '{"type": "join", "token": NaN}'])
async def test_deep_or_non_finite_first_message_is_bad_message(
    harness: Harness, raw: str, caplog: pytest.LogCaptureFixture
) -> None:
    peer = await harness.open()
    await peer.ws.send_str(raw)
    await peer.expect_error("bad_message")
    assert await peer.expect_closed() == 1008
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_binary_frames_count_against_the_rate_limit(harness: Harness) -> None:
    therapist, _client = await harness.in_call("r")
    for _ in range(300):
        await therapist.ws.send_bytes(b"\x00")
    # Each frame gets its answer, an error.
    codes: list[object] = []
    while len(codes) < 300:
        answer = await therapist.recv()
        if answer["type"] == "error":
            codes.append(answer["code"])
    assert "rate_limited" in codes and "bad_message" in codes
    assert codes.count("bad_message") <= 60  # the burst and what refilled meanwhile


async def test_repeated_refusals_are_logged_once_per_socket(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sessionroom.ws")
    therapist, _client = await harness.in_call("r")
    for _ in range(40):
        await therapist.ws.send_str(DEEP)
    for _ in range(40):
        await therapist.expect_error("bad_message")
    refused = [r for r in caplog.records if r.getMessage() == "message refused"]
    assert len(refused) == 1 and getattr(refused[0], "code", None) == "bad_message"
    assert getattr(refused[0], "participant", None) == therapist.id


async def test_text_that_cannot_be_encoded_is_refused_at_join(harness: Harness) -> None:
    # "\ud800" is valid JSON, but a lone surrogate: no UTF-8 encoding exists for it.
    await _refused(harness, "eyJhbGciOiJIUzI1NiJ9.\ud800.x", "invalid_token")
    therapist = await harness.join(harness.token("r", Role.THERAPIST, "T"))
    await therapist.ws.close()
    peer = await harness.open()
    await peer.send(type="join", token=therapist.link, resume="\ud800." + "x" * 10)
    await peer.expect_error("bad_message")
    assert await peer.expect_closed() == 1008
