"""Consent-gated recording with real aiortc peers as participants.

Each participant's page is played by an aiortc peer that opens the send-only recording leg
exactly as the browser does: all candidates in the offer, VP8 and Opus. The server's own
aiortc peer offers 127.0.0.1 because the settings say SESSIONROOM_ICE_LOOPBACK=1.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from signaling.app import create_app
from signaling.config import Settings
from signaling.core.model import RecordingMode, RoomSettings
from signaling.tokens import KeyRing
from tests.conftest import AiohttpClient, Harness
from tests.integration.recording_peers import (
    Leg,
    answer_leg,
    ask_everyone,
    decode,
    open_leg,
    record_everyone,
    state,
)
from tests.support import Peer, make_settings

pytestmark = pytest.mark.network

CONSENT = RoomSettings(recording=RecordingMode.CONSENT)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        state_dir=tmp_path / "state", recordings_dir=tmp_path / "recordings", ice_loopback=True
    )


@pytest.fixture
async def harness(aiohttp_client: AiohttpClient, settings: Settings, keys: KeyRing) -> Harness:
    app = create_app(settings, keys)
    return Harness(await aiohttp_client(app), keys)


@pytest.fixture
async def legs() -> AsyncIterator[list[Leg]]:
    opened: list[Leg] = []
    yield opened
    await asyncio.gather(*(leg.close() for leg in opened))


async def start_legs(recording: str, peers: tuple[Peer, ...], legs: list[Leg]) -> None:
    for peer in peers:
        legs.append(await open_leg(peer, recording))
    for peer, leg in zip(peers, legs[-len(peers) :], strict=True):
        await answer_leg(peer, leg)


def manifest_path(settings: Settings, recording: str) -> Path:
    return settings.recordings_path / recording / "manifest.json"


async def finished_manifest(settings: Settings, recording: str) -> dict[str, Any]:
    path = manifest_path(settings, recording)
    for _ in range(200):
        if path.exists():
            manifest: dict[str, Any] = json.loads(path.read_text())
            if manifest["status"] != "recording":
                return manifest
        await asyncio.sleep(0.05)
    raise AssertionError(f"{recording} was not finished")


def ledger(settings: Settings) -> list[dict[str, Any]]:
    path = settings.recordings_path / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_nothing_is_written_without_every_yes(harness: Harness, settings: Settings) -> None:
    therapist, client = await harness.in_call("no-consent", CONSENT)
    assert therapist.joined["recording"]["status"] == "idle"
    request = await ask_everyone(therapist, client)
    pending = await state(client, "pending")
    assert pending["answers"] == {therapist.id: None, client.id: None}
    await therapist.send(type="consent", request=request, granted=True)
    await client.send(type="consent", request=request, granted=False)
    stopped = await state(therapist, "stopped")
    assert stopped["reason"] == "declined" and stopped["by"] == client.id
    assert stopped["answers"] == {therapist.id: True, client.id: False}
    assert stopped["recording"] is None

    # No leg is accepted, with or without a plausible recording id.
    leg = await open_leg(client, "rec-20261126-000000-aaaaaa")
    try:
        await client.expect_error("recording_not_active")
    finally:
        await leg.close()
    folders = [p for p in settings.recordings_path.iterdir() if p.is_dir()]
    assert folders == []
    events = [(e["event"], e["participant"], e["granted"], e["reason"]) for e in ledger(settings)]
    assert events == [
        ("requested", therapist.id, None, None),
        ("answered", therapist.id, True, None),
        ("answered", client.id, False, None),
        ("stopped", client.id, None, "declined"),
    ]


async def test_a_pending_request_accepts_no_leg(harness: Harness) -> None:
    therapist, client = await harness.in_call("pending-leg", CONSENT)
    request = await ask_everyone(therapist, client)
    await therapist.send(type="consent", request=request, granted=True)
    leg = await open_leg(therapist, "rec-20261126-000000-aaaaaa")
    try:
        await therapist.expect_error("recording_not_active")
    finally:
        await leg.close()


async def test_every_yes_records_each_participant(
    harness: Harness, settings: Settings, legs: list[Leg]
) -> None:
    therapist, client = await harness.in_call("recorded", CONSENT)
    started = await record_everyone(therapist, client)
    recording, started_at = started.recording, started.at
    await start_legs(recording, (therapist, client), legs)
    await asyncio.sleep(6)
    metrics = await (await harness.http.get("/metrics")).text()
    assert "sessionroom_recordings 1\n" in metrics
    assert "sessionroom_recording_legs 2\n" in metrics
    await therapist.send(type="recording_stop")
    stopped = await state(client, "stopped")
    assert stopped["reason"] == "stopped_by_therapist" and stopped["by"] == therapist.id
    interval = stopped["at"] - started_at
    # The server closed both legs: each page's connection sees it go.
    for _ in range(100):
        if all(leg.pc.connectionState == "closed" for leg in legs):
            break
        await asyncio.sleep(0.05)
    assert [leg.pc.connectionState for leg in legs] == ["closed", "closed"]

    manifest = await finished_manifest(settings, recording)
    assert manifest["status"] == "complete"
    assert manifest["stop_reason"] == "stopped_by_therapist"
    assert {p["id"]: p["name"] for p in manifest["participants"]} == {
        therapist.id: "Dr Sam",
        client.id: "Alex",
    }
    files = {f["participant"]: f for f in manifest["files"]}
    assert set(files) == {therapist.id, client.id}
    for participant, info in files.items():
        path = settings.recordings_path / recording / info["name"]
        assert info["name"] == f"{participant}.webm"
        assert (path.stat().st_mode & 0o777) == 0o600
        decoded = decode(path)
        assert decoded.kinds == {"audio", "video"}
        assert decoded.codecs == {"vp8", "opus"}
        assert decoded.size == (640, 480)
        assert decoded.video_frames > 60 and decoded.audio_frames > 100
        assert abs(decoded.last - interval) <= 0.1 * interval, (decoded, interval)
        assert abs(info["duration"] - interval) <= 0.1 * interval
        assert sorted(info["codecs"]) == ["opus", "vp8"]
    events = [e["event"] for e in manifest["ledger"]]
    assert events == ["requested", "answered", "answered", "started", "stopped"]
    assert not (settings.recordings_path / recording / "parts").exists()


async def test_audio_and_video_start_aligned(
    harness: Harness, settings: Settings, legs: list[Leg]
) -> None:
    therapist, client = await harness.in_call("aligned", CONSENT)
    recording = (await record_everyone(therapist, client)).recording
    await start_legs(recording, (therapist,), legs)
    await asyncio.sleep(3)
    await therapist.send(type="recording_stop")
    manifest = await finished_manifest(settings, recording)
    path = settings.recordings_path / recording / manifest["files"][0]["name"]
    firsts: dict[str, float] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.pts is not None and packet.stream.type not in firsts:
                assert packet.time_base is not None
                firsts[packet.stream.type] = float(packet.pts * packet.time_base)
    # The leg is set up after the gate opens, so both start a little after zero, together.
    assert 0 < firsts["audio"] < 3 and 0 < firsts["video"] < 3
    assert abs(firsts["audio"] - firsts["video"]) < 0.15, firsts


async def test_a_withdrawal_stops_at_once(
    harness: Harness, settings: Settings, legs: list[Leg]
) -> None:
    therapist, client = await harness.in_call("withdrawn", CONSENT)
    started = await record_everyone(therapist, client)
    recording, started_at = started.recording, started.at
    await start_legs(recording, (therapist, client), legs)
    await asyncio.sleep(3)
    withdrawn_at = time.time()
    await client.send(type="consent", request=started.request, granted=False)
    stopped = await state(therapist, "stopped")
    assert stopped["reason"] == "withdrawn" and stopped["by"] == client.id
    await asyncio.sleep(1.5)  # the senders go on sending: none of it may be written
    manifest = await finished_manifest(settings, recording)
    assert manifest["stop_reason"] == "withdrawn"
    assert len(manifest["files"]) == 2
    for info in manifest["files"]:
        decoded = decode(settings.recordings_path / recording / info["name"])
        assert decoded.last <= withdrawn_at - started_at + 0.5, decoded
        assert decoded.last > 1.5


async def test_a_newcomer_stops_recording_until_they_say_yes(
    harness: Harness, settings: Settings, legs: list[Leg]
) -> None:
    room = RoomSettings(max_clients=2, recording=RecordingMode.CONSENT)
    therapist, client = await harness.in_call("newcomer", room)
    first = (await record_everyone(therapist, client)).recording
    await start_legs(first, (therapist, client), legs)
    await asyncio.sleep(2)

    newcomer = await harness.client("newcomer", "Jo", settings=room)
    await therapist.expect("lobby")
    await therapist.send(type="admit", participant=newcomer.id)
    await newcomer.expect("admitted")
    paused = await state(client, "pending")
    assert paused["reason"] == "participant_joined" and paused["by"] == newcomer.id
    assert paused["answers"] == {therapist.id: True, client.id: True, newcomer.id: None}
    asked = await newcomer.expect("consent_request")
    manifest = await finished_manifest(settings, first)
    assert manifest["stop_reason"] == "participant_joined"
    assert (manifest["ledger"][-1]["event"], manifest["ledger"][-1]["recording"]) == (
        "stopped",
        first,
    )

    # The old recording's legs no longer count.
    await client.send(type="rec_offer", recording=first, sdp="v=0\r\n")
    await client.expect_error("recording_not_active")

    await newcomer.send(type="consent", request=asked["request"], granted=True)
    resumed = await state(therapist, "recording")
    assert resumed["recording"] != first
    assert resumed["answers"] == {therapist.id: True, client.id: True, newcomer.id: True}


async def test_leaving_stops_the_recording(harness: Harness, settings: Settings) -> None:
    therapist, client = await harness.in_call("leaving", CONSENT)
    recording = (await record_everyone(therapist, client)).recording
    await client.send(type="leave")
    stopped = await state(therapist, "stopped")
    assert stopped["reason"] == "participant_left" and stopped["by"] == client.id
    manifest = await finished_manifest(settings, recording)
    assert manifest["stop_reason"] == "participant_left"
    assert manifest["files"] == []  # no leg was opened: nothing to keep


async def test_ending_the_session_stops_the_recording(harness: Harness, settings: Settings) -> None:
    therapist, client = await harness.in_call("ending", CONSENT)
    recording = (await record_everyone(therapist, client)).recording
    await therapist.send(type="end")
    await client.expect("ended")
    manifest = await finished_manifest(settings, recording)
    assert manifest["stop_reason"] == "session_ended"


async def test_refusals(harness: Harness, legs: list[Leg]) -> None:
    therapist, client = await harness.in_call("refusals-off")
    await therapist.send(type="recording_request")
    await therapist.expect_error("recording_disabled")

    therapist, client = await harness.in_call("refusals", CONSENT)
    await client.send(type="recording_request")
    await client.expect_error("forbidden")
    await client.send(type="recording_stop")
    await client.expect_error("forbidden")
    await therapist.send(type="recording_stop")
    await therapist.expect_error("not_allowed")
    await client.send(type="consent", request="q-nothing", granted=True)
    await client.expect_error("not_allowed")
    await client.send(type="consent", request="q-nothing", granted="yes")
    await client.expect_error("bad_message")

    request = await ask_everyone(therapist, client)
    await therapist.send(type="recording_request")
    await therapist.expect_error("conflict")
    await client.send(type="consent", request="q-stale", granted=True)
    await client.expect_error("conflict")

    for peer in (therapist, client):
        await peer.send(type="consent", request=request, granted=True)
    recording = (await state(therapist, "recording"))["recording"]
    await client.send(type="rec_offer", recording=recording, sdp="not sdp")
    await client.expect_error("bad_message")
    # A browser that can only send H.264.
    legs.append(await open_leg(client, recording, video_codec="video/H264"))
    await client.expect_error("recording_codec_unsupported")
    issue = await therapist.expect("recording_issue")
    assert issue == {
        "type": "recording_issue",
        "participant": client.id,
        "code": "recording_codec_unsupported",
    }


async def test_resuming_participant_sees_the_recording(harness: Harness) -> None:
    therapist, client = await harness.in_call("resume-rec", CONSENT)
    recording = (await record_everyone(therapist, client)).recording
    await client.ws.close()
    back = await harness.join(client.link, resume=client.joined["resume"])
    assert back.joined["recording"]["status"] == "recording"
    assert back.joined["recording"]["recording"] == recording


async def test_an_unreadable_offer_is_bad_message_and_recording_goes_on(
    harness: Harness, legs: list[Leg]
) -> None:
    therapist, client = await harness.in_call("bad-sdp", CONSENT)
    recording = (await record_everyone(therapist, client)).recording
    await start_legs(recording, (therapist,), legs)
    # The right codecs, but no ICE credentials: aiortc cannot take it.
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendonly")
    pc.addTransceiver("audio", direction="sendonly")
    offer = await pc.createOffer()
    await pc.close()
    broken = "\r\n".join(
        line
        for line in offer.sdp.split("\r\n")
        if not line.startswith(("a=ice-ufrag", "a=ice-pwd"))
    )
    await client.send(type="rec_offer", recording=recording, sdp=broken)
    await client.expect_error("bad_message")
    # The client's real leg is still taken, and the recording was never stopped.
    legs.append(await open_leg(client, recording))
    await answer_leg(client, legs[-1])
    await therapist.send(type="recording_stop")
    stopped = await state(therapist, "stopped")
    assert stopped["reason"] == "stopped_by_therapist", stopped
