"""The server's end of a recording leg: a receive-only aiortc peer connection.

The browser offers audio and video send-only; this answers, taps each receiver so that its
encoded frames go to a sink instead of a decoder, and asks for a key frame when the sink
wants one. It never decodes and never sends media.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from media import encoded_frames
from media.encoded_frames import EncodedFrame
from signaling.core.errors import BadMessage, RecordingCodecUnsupported

log = logging.getLogger("sessionroom.leg")

WANTED = {"audio": "opus", "video": "vp8"}


def offered_codecs(sdp: str) -> dict[str, set[str]]:
    """The codec names each media kind of an SDP offers (active sections only)."""
    offered: dict[str, set[str]] = {}
    kind: str | None = None
    for line in sdp.splitlines():
        if line.startswith("m="):
            parts = line[2:].split()
            kind = parts[0] if len(parts) > 1 and parts[1] != "0" else None
            if kind is not None:
                offered.setdefault(kind, set())
        elif kind is not None and line.startswith("a=rtpmap:"):
            _, _, rest = line.partition(" ")
            offered[kind].add(rest.split("/")[0].lower())
    return offered


def check_offer(sdp: str) -> None:
    """Refuse an offer with nothing to record, or without the codecs we write."""
    offered = offered_codecs(sdp)
    if not offered.keys() & WANTED.keys():
        raise BadMessage("The offer has no audio or video to record.")
    for kind, codecs in offered.items():
        if kind in WANTED and WANTED[kind] not in codecs:
            raise RecordingCodecUnsupported()


class RecordingLeg:
    def __init__(
        self,
        configuration: RTCConfiguration,
        sink: Callable[[EncodedFrame], None],
        *,
        on_lost: Callable[[], None],
        ids: dict[str, str],
    ) -> None:
        self._pc = RTCPeerConnection(configuration)
        self._sink = sink
        self._on_lost = on_lost
        self._ids = ids
        self._video: list[RTCRtpReceiver] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._pc.on("connectionstatechange", self._state_changed)

    async def accept(self, offer_sdp: str) -> str:
        """Take the browser's offer (with all its candidates, and already checked with
        `check_offer`); return the answer."""
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except Exception as e:
            # Whatever aiortc cannot read in a browser's offer is that offer's fault.
            raise BadMessage("The recording offer could not be read.") from e
        for transceiver in self._pc.getTransceivers():
            kind = transceiver.kind
            codecs = [
                c
                for c in RTCRtpSender.getCapabilities(kind).codecs
                if c.mimeType.lower() in (f"{kind}/{WANTED[kind]}", f"{kind}/rtx")
            ]
            transceiver.setCodecPreferences(codecs)
            transceiver.direction = "recvonly"
            receiver = transceiver.receiver
            if kind == "video":
                self._video.append(receiver)
            encoded_frames.tap(receiver, kind, self._deliver)
        answer = await self._pc.createAnswer()
        await self._pc.setLocalDescription(answer)
        return self._pc.localDescription.sdp

    def _deliver(self, frame: EncodedFrame) -> None:
        if not self._closed:
            self._sink(frame)

    def request_keyframe(self, ssrc: int) -> None:
        """Ask the browser for a key frame on this video stream."""
        if self._closed or not self._video:
            return
        task = asyncio.create_task(self._send_pli(ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_pli(self, ssrc: int) -> None:
        for receiver in self._video:
            with contextlib.suppress(Exception):  # a PLI on a closing transport is harmless
                await encoded_frames.request_keyframe(receiver, ssrc)

    async def _state_changed(self) -> None:
        state = self._pc.connectionState
        log.info("recording leg %s", state, extra=self._ids)
        if state in ("failed", "closed") and not self._closed:
            self._on_lost()

    def stop_writing(self) -> None:
        """From now on frames are dropped here, before the sink."""
        self._closed = True

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await self._pc.close()
