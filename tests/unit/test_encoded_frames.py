"""The seam in aiortc that the recorder relies on, checked against the installed aiortc.

An aiortc upgrade that moves these internals must fail here, by name, before it silently
records nothing (the recording tests would fail too, less clearly)."""

from __future__ import annotations

import queue
from fractions import Fraction
from typing import Any

import aiortc
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media import encoded_frames
from media.encoded_frames import EncodedFrame, SeamBroken, check_seam, tap, vp8_size

# The first bytes of a 640x480 VP8 key frame: frame tag, start code, size.
VP8_KEY = bytes([0x50, 0x42, 0x00, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01]) + bytes(20)
VP8_INTER = bytes([0x51, 0x42, 0x00]) + bytes(20)


def test_pinned_aiortc_is_installed() -> None:
    assert aiortc.__version__ == encoded_frames.SEAM_VERSION
    check_seam()


def test_a_different_aiortc_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aiortc, "__version__", "9.9.9")
    with pytest.raises(SeamBroken, match=r"9\.9\.9"):
        check_seam()


async def test_a_real_receiver_has_the_internals_and_is_tapped() -> None:
    pc = RTCPeerConnection()
    try:
        receiver = pc.addTransceiver("video", direction="recvonly").receiver
        check_seam(receiver)
        got: list[EncodedFrame] = []
        tap(receiver, "video", got.append)
        q: queue.Queue[Any] = receiver._RTCRtpReceiver__decoder_queue  # type: ignore[attr-defined]
        codec = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
        q.put((codec, JitterFrame(data=VP8_KEY, timestamp=3000)))
        assert q.qsize() == 0  # never reaches the decoder thread
        assert len(got) == 1
        frame = got[0]
        assert (frame.kind, frame.codec, frame.timestamp, frame.clock_rate) == (
            "video",
            "vp8",
            3000,
            90000,
        )
        assert frame.data == VP8_KEY and frame.keyframe
        assert Fraction(frame.timestamp, frame.clock_rate) == Fraction(1, 30)
        q.put(None)  # stopping still reaches the decoder thread
        assert q.get_nowait() is None
    finally:
        await pc.close()


def test_receiver_without_the_queue_is_refused() -> None:
    class NotAReceiver:
        pass

    with pytest.raises(SeamBroken):
        check_seam(NotAReceiver())  # type: ignore[arg-type]


def test_vp8_headers() -> None:
    assert vp8_size(VP8_KEY) == (640, 480)
    assert vp8_size(VP8_INTER) is None
    assert vp8_size(b"") is None
