"""What a participant's page does about recording, played by aiortc peers; and what a
player sees in the files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from aiortc import (
    AudioStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
    VideoStreamTrack,
)

from media.ice import allow_loopback_candidates
from tests.support import Peer

STEP = 10.0


@dataclass
class Leg:
    pc: RTCPeerConnection

    async def close(self) -> None:
        await self.pc.close()


async def open_leg(peer: Peer, recording: str, *, video_codec: str = "video/VP8") -> Leg:
    """What the page does when recording starts: a send-only connection to the server."""
    allow_loopback_candidates()  # as Chromium's --allow-loopback-in-peer-connection does
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    video.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == video_codec]
    )
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    await peer.send(type="rec_offer", recording=recording, sdp=pc.localDescription.sdp)
    return Leg(pc)


async def answer_leg(peer: Peer, leg: Leg) -> None:
    answer = await peer.expect("rec_answer", timeout=STEP)
    await leg.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))


async def state(peer: Peer, status: str) -> dict[str, Any]:
    """The next recording_state with this status (earlier ones are skipped)."""
    while True:
        message = await peer.expect("recording_state", timeout=STEP)
        if message["status"] == status:
            return message


async def ask_everyone(therapist: Peer, *others: Peer) -> str:
    await therapist.send(type="recording_request")
    request = ""
    for peer in (therapist, *others):
        asked = await peer.expect("consent_request")
        assert asked["by"]["id"] == therapist.id
        assert asked["by"]["name"] == "Dr Sam"
        assert asked["records"] == ["audio", "video"] and asked["where"]
        request = asked["request"]
    return request


@dataclass(frozen=True)
class Started:
    recording: str
    at: float
    request: str


async def record_everyone(therapist: Peer, *others: Peer) -> Started:
    request = await ask_everyone(therapist, *others)
    for peer in (therapist, *others):
        await peer.send(type="consent", request=request, granted=True)
    started = await state(therapist, "recording")
    for peer in others:
        assert (await state(peer, "recording"))["recording"] == started["recording"]
    return Started(started["recording"], started["at"], request)


@dataclass(frozen=True)
class Decoded:
    kinds: set[str]
    codecs: set[str]
    video_frames: int
    audio_frames: int
    first: float
    last: float  # end of the last decoded frame, in seconds on the recording's timeline
    size: tuple[int, int]


def decode(path: Path) -> Decoded:
    """Decode the whole file, as a player would."""
    video_frames = audio_frames = 0
    first, last = float("inf"), 0.0
    size = (0, 0)
    with av.open(str(path)) as container:
        kinds = {str(s.type) for s in container.streams}
        codecs = {s.codec_context.name for s in container.streams}
        for frame in container.decode(*container.streams):
            assert frame.time is not None
            first = min(first, frame.time)
            if isinstance(frame, av.VideoFrame):
                video_frames += 1
                size = (frame.width, frame.height)
                last = max(last, frame.time)
            else:
                audio_frames += 1
                last = max(last, frame.time + frame.samples / frame.sample_rate)
    return Decoded(kinds, codecs, video_frames, audio_frames, first, last, size)
