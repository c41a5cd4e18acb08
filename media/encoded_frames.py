"""Encoded frames out of an aiortc receiver, before any decoder sees them.

aiortc has no public API for this. Its receiver assembles each frame in a jitter buffer on
the event loop and puts `(codec, JitterFrame)` on a queue read by a decoder thread; `tap`
replaces `put` on one receiver's own queue, so that connection's frames go to a callback
and are never decoded, while every other connection in the process decodes as usual.
The internals used here are those of aiortc 1.16.0 (pinned in pyproject.toml);
`check_seam` fails loudly if an upgrade moves them, and a test calls it.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiortc
from aiortc import RTCRtpReceiver

SEAM_VERSION = "1.16.0"
_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER = "_RTCRtpReceiver__jitter_buffer"
# A frame's arrival is stamped on its first packet; bounded in case frames never complete.
_MAX_PENDING_ARRIVALS = 512


class SeamBroken(RuntimeError):
    """aiortc's internals no longer look like the ones the recorder relies on."""


@dataclass(frozen=True)
class EncodedFrame:
    kind: str  # "audio" or "video"
    codec: str  # lower case: "vp8", "opus", ...
    data: bytes
    # RTP timestamp, unwrapped and rebased by aiortc to 0 at the stream's first frame.
    timestamp: int
    clock_rate: int
    # Event-loop time at which the frame's first RTP packet arrived.
    arrival: float
    ssrc: int

    @property
    def keyframe(self) -> bool:
        # VP8: bit 0 of the frame tag is 0 on a key frame (RFC 6386, 9.1). Audio: always.
        if self.codec == "vp8":
            return bool(self.data) and not self.data[0] & 0x01
        return self.kind == "audio"


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a VP8 key frame's header, or None if it is not one."""
    if len(data) < 10 or data[0] & 0x01 or data[3:6] != b"\x9d\x01\x2a":
        return None
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return width, height


def check_seam(receiver: RTCRtpReceiver | None = None) -> None:
    """Raise SeamBroken unless aiortc is the version, and has the internals, we rely on."""
    if aiortc.__version__ != SEAM_VERSION:
        raise SeamBroken(
            f"aiortc {aiortc.__version__} is installed; the recorder's seam is written for "
            f"{SEAM_VERSION}. Check media/encoded_frames.py against the new receiver."
        )
    if receiver is None:
        return
    q = getattr(receiver, _QUEUE, None)
    jitter = getattr(receiver, _JITTER, None)
    if not isinstance(q, queue.Queue) or not callable(getattr(jitter, "add", None)):
        raise SeamBroken("aiortc's RTCRtpReceiver no longer has the decoder queue we tap.")
    if not callable(getattr(receiver, "_send_rtcp_pli", None)):
        raise SeamBroken("aiortc's RTCRtpReceiver no longer has _send_rtcp_pli.")


def tap(receiver: RTCRtpReceiver, kind: str, deliver: Callable[[EncodedFrame], None]) -> None:
    """From now on this receiver's encoded frames go to `deliver` (on the event loop), not to
    its decoder. Call before media flows: right after setRemoteDescription."""
    check_seam(receiver)
    loop = asyncio.get_running_loop()
    q: queue.Queue[Any] = getattr(receiver, _QUEUE)
    jitter = getattr(receiver, _JITTER)
    original_put = q.put
    original_add = jitter.add
    arrivals: dict[int, tuple[float, int]] = {}  # raw RTP timestamp -> (arrival, ssrc)

    def add(packet: Any) -> Any:
        if packet.timestamp not in arrivals:
            if len(arrivals) >= _MAX_PENDING_ARRIVALS:
                arrivals.clear()
            arrivals[packet.timestamp] = (loop.time(), packet.ssrc)
        pli, frame = original_add(packet)
        if frame is not None:
            # Still the raw RTP timestamp here; aiortc rebases it before `put`.
            arrival, ssrc = arrivals.pop(frame.timestamp, (loop.time(), packet.ssrc))
            frame.sessionroom_arrival = (arrival, ssrc)
        return pli, frame

    def put(item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver is stopping: let the stock worker end the track
            original_put(item, block, timeout)
            return
        codec, frame = item
        arrival, ssrc = getattr(frame, "sessionroom_arrival", (loop.time(), 0))
        deliver(
            EncodedFrame(
                kind=kind,
                codec=codec.name.lower(),
                data=bytes(frame.data),
                timestamp=frame.timestamp,
                clock_rate=codec.clockRate,
                arrival=arrival,
                ssrc=ssrc,
            )
        )

    jitter.add = add
    q.put = put  # type: ignore[method-assign]


async def request_keyframe(receiver: RTCRtpReceiver, ssrc: int) -> None:
    """Send a PLI to the sender of this SSRC."""
    await receiver._send_rtcp_pli(ssrc)
