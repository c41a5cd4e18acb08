"""Two real aiortc peers, a therapist and a client, connect using only the server's `signal`.

Everything stays on loopback: aioice is told that 127.0.0.1 is the only host address, and
each peer gets an explicit (empty) ICE server list from `joined`, so aiortc never contacts its
default public STUN server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcicetransport import RTCIceGatherer

from media.ice import IceServer, rtc_configuration
from tests.conftest import Harness
from tests.support import Peer

pytestmark = pytest.mark.network

STEP_TIMEOUT = 5.0  # per wait: loopback ICE + DTLS + the first VP8 frame take well under 1 s
# VideoStreamTrack sends 640x480 frames of all-zero YUV, which is pure green in RGB.
WIDTH, HEIGHT = 640, 480


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    # aioice leaves 127.0.0.1 out of its host candidates; in a loopback-only namespace it
    # would then have none at all. Returning only loopback also keeps traffic off real NICs.
    return ["127.0.0.1"]


def _no_default_stun(cls: type[Any]) -> list[Any]:
    raise AssertionError("aiortc fell back to its default public STUN server")


def _configuration(joined: dict[str, Any]) -> Any:
    servers = [
        IceServer(
            urls=tuple(s["urls"]),
            username=s.get("username"),
            credential=s.get("credential"),
        )
        for s in joined["ice_servers"]
    ]
    config = rtc_configuration(servers)
    # An empty list, not None: None is what makes aiortc use stun.l.google.com.
    assert config.iceServers is not None
    return config


class Observer:
    """What one peer connection sees: its ICE state, and every remote track, drained.

    aiortc's receiver queues decoded frames without bound until someone calls recv(), and
    stopping the track does not stop the decoder thread from filling that queue: so read.
    """

    def __init__(self, pc: Any) -> None:
        self.pc = pc
        self.ice_settled = asyncio.Event()
        self.first_frame: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.kinds: list[str] = []
        self._readers: list[asyncio.Task[None]] = []
        pc.on("track", self._on_track)
        pc.on("iceconnectionstatechange", self._on_ice_state)

    def _on_ice_state(self) -> None:
        # aiortc has no "connected" ICE state: it goes checking -> completed (or failed).
        if self.pc.iceConnectionState in ("completed", "failed", "closed"):
            self.ice_settled.set()

    def _on_track(self, track: Any) -> None:
        self.kinds.append(track.kind)
        self._readers.append(asyncio.create_task(self._drain(track)))

    async def _drain(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                if not self.first_frame.done():
                    self.first_frame.set_result(frame)
        except MediaStreamError:
            pass  # the receiver stopped: pc.close() ends every remote track this way

    async def close(self) -> None:
        """After pc.close(): stop reading. A track whose receiver never started (no DTLS)
        is not ended by pc.close(), and its recv() would wait forever, so cancel."""
        for task in self._readers:
            task.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)


def _description(pc: Any) -> dict[str, Any]:
    local = pc.localDescription
    return {"kind": "description", "type": local.type, "sdp": local.sdp}


async def _receive_description(peer: Peer, sender: Peer) -> Any:
    message = await peer.expect("signal", timeout=STEP_TIMEOUT)
    assert message["from"] == sender.id
    data = message["data"]
    assert data["kind"] == "description", data
    return RTCSessionDescription(sdp=data["sdp"], type=data["type"])


def _assert_loopback_candidates(sdp: str) -> None:
    # aiortc does not trickle: the candidates are in the SDP after setLocalDescription.
    candidates = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
    assert candidates, sdp
    for line in candidates:
        assert " 127.0.0.1 " in line and " typ host" in line, line


def _assert_green_frame(frame: Any) -> None:
    assert (frame.width, frame.height) == (WIDTH, HEIGHT)
    rgb = frame.reformat(format="rgb24").planes[0]
    at = (HEIGHT // 2) * rgb.line_size + (WIDTH // 2) * 3
    red, green, blue = bytes(rgb)[at : at + 3]
    assert green > 100 and red < 30 and blue < 30, (red, green, blue)


async def test_therapist_and_client_exchange_video_through_the_server(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", _loopback_only)
    monkeypatch.setattr(RTCIceGatherer, "getDefaultIceServers", classmethod(_no_default_stun))

    therapist, client = await harness.in_call("webrtc-room")
    assert therapist.joined["ice_servers"] == []

    therapist_pc = RTCPeerConnection(configuration=_configuration(therapist.joined))
    client_pc = RTCPeerConnection(configuration=_configuration(client.joined))
    therapist_sees, client_sees = Observer(therapist_pc), Observer(client_pc)
    cameras = [VideoStreamTrack(), VideoStreamTrack()]
    try:
        therapist_pc.addTrack(cameras[0])
        client_pc.addTrack(cameras[1])

        # The therapist was in the room first (it got `peer_joined`), so it offers.
        await therapist_pc.setLocalDescription(await therapist_pc.createOffer())
        _assert_loopback_candidates(therapist_pc.localDescription.sdp)
        await therapist.send(type="signal", to=client.id, data=_description(therapist_pc))

        offer = await _receive_description(client, therapist)
        assert offer.type == "offer"
        await client_pc.setRemoteDescription(offer)
        await client_pc.setLocalDescription(await client_pc.createAnswer())
        _assert_loopback_candidates(client_pc.localDescription.sdp)
        await client.send(type="signal", to=therapist.id, data=_description(client_pc))

        answer = await _receive_description(therapist, client)
        assert answer.type == "answer"
        await therapist_pc.setRemoteDescription(answer)

        async with asyncio.timeout(STEP_TIMEOUT):
            await asyncio.gather(therapist_sees.ice_settled.wait(), client_sees.ice_settled.wait())
        assert therapist_pc.iceConnectionState == "completed"
        assert client_pc.iceConnectionState == "completed"

        async with asyncio.timeout(STEP_TIMEOUT):
            frames = await asyncio.gather(therapist_sees.first_frame, client_sees.first_frame)
        for frame in frames:
            _assert_green_frame(frame)
        assert therapist_sees.kinds == ["video"]
        assert client_sees.kinds == ["video"]
    finally:
        await asyncio.gather(therapist_pc.close(), client_pc.close())
        await asyncio.gather(therapist_sees.close(), client_sees.close())
        for camera in cameras:
            camera.stop()
