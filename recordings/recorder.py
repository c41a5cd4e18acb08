"""Writes one participant's encoded frames to disk without decoding, then merges them.

While recording, audio and video go to two single-track WebM files in the recording's
`parts/` folder: in one file, FFmpeg's interleaver would hold every audio packet in memory
while the video is paused (camera off, audio only). Clusters close at least once a second
and are flushed, so a killed server loses at most about a second. At the stop, `merge`
copies both into `<participant>.webm` (no decoding), each packet keeping its time.

Times: every file of a recording shares one zero, the moment the gate opened. A stream's
frame lands at (arrival of its first frame - zero) + (its RTP time since that frame), so a
participant's audio and video start aligned, and with everyone else's.
"""

from __future__ import annotations

import heapq
import logging
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container

from media.encoded_frames import EncodedFrame, vp8_size

log = logging.getLogger("sessionroom.recorder")

CONTAINER_OPTIONS = {
    "cluster_time_limit": "1000",  # ms: a new cluster at least every second
    "flush_packets": "1",  # and written through at once, not kept in a write buffer
    "max_interleave_delta": "500000",
}
SUPPORTED = {"video": "vp8", "audio": "opus"}
OPUS_RATE = 48000
KEYFRAME_RETRY = 0.5  # seconds without the key frame asked for before asking again


def create_private(path: Path) -> None:
    """Create (or truncate) a file readable by this user only; FFmpeg then keeps the mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class _Track:
    """One single-track part file."""

    def __init__(self, path: Path, first: EncodedFrame, zero: float) -> None:
        self.path = path
        self.codec = first.codec
        self.time_base = Fraction(1, first.clock_rate)
        self.base = 0
        self.rebase(first, zero)  # where this stream's RTP clock sits on the timeline
        self.last_pts = -1
        self.frames = 0
        self.container: av.container.OutputContainer | None = None
        self.stream: Any = None

    def rebase(self, first: EncodedFrame, zero: float) -> None:
        offset = max(0.0, first.arrival - zero)
        self.base = round(offset * first.clock_rate) - first.timestamp

    def open(self, frame: EncodedFrame) -> None:
        create_private(self.path)
        out = av.open(str(self.path), "w", format="webm", container_options=CONTAINER_OPTIONS)
        if self.codec == "vp8":
            size = vp8_size(frame.data)
            assert size is not None
            self.stream = out.add_mux_stream("vp8", width=size[0], height=size[1])
        else:
            # An encoder that is opened but never used gives the stream a valid OpusHead.
            self.stream = out.add_stream("libopus", rate=OPUS_RATE, layout="stereo")
        out.start_encoding()
        self.container = out

    def write(self, frame: EncodedFrame) -> None:
        pts = self.base + frame.timestamp
        if pts <= self.last_pts or self.container is None:
            return  # out of order or a repeat: the file's times must only go forward
        packet = av.Packet(frame.data)
        packet.stream = self.stream
        packet.time_base = self.time_base
        packet.pts = packet.dts = pts
        packet.is_keyframe = frame.kind == "audio" or vp8_size(frame.data) is not None
        self.container.mux(packet)
        self.last_pts = pts
        self.frames += 1

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


class ParticipantRecorder:
    """Takes one participant's frames from their recording leg while `open`."""

    def __init__(
        self,
        parts: Path,
        participant_id: str,
        zero: float,
        *,
        request_keyframe: Callable[[int], None],
    ) -> None:
        self.parts = parts
        self.participant_id = participant_id
        self.zero = zero
        self.open = True
        self._request_keyframe = request_keyframe
        self._tracks: dict[str, _Track] = {}
        self._first: dict[str, EncodedFrame] = {}
        self._asked_at: float | None = None
        self.unsupported: set[str] = set()
        self._rebase: set[str] = set()  # kinds whose next frame starts a new leg

    def write(self, frame: EncodedFrame) -> None:
        if not self.open:
            return  # after the stop nothing is written, whatever is still in flight
        if SUPPORTED.get(frame.kind) != frame.codec:
            self.unsupported.add(frame.codec)
            return
        first = self._first.setdefault(frame.kind, frame)
        if frame.kind == "video" and first is frame:
            self._ask(frame)  # a leg has started: a key frame now, whatever comes first
        track = self._tracks.get(frame.kind)
        starting = track is None or frame.kind in self._rebase
        if starting and frame.kind == "video" and not self._keyframe(frame):
            return  # a file, or a new leg's part of it, starts at a key frame
        if track is None:
            track = self._open_track(frame, first)
            if track is None:
                return
        elif frame.kind in self._rebase:
            track.rebase(first, self.zero)
            self._rebase.discard(frame.kind)
        track.write(frame)

    def _keyframe(self, frame: EncodedFrame) -> bool:
        """Is this a key frame? If not, ask again when the last ask went unanswered."""
        if vp8_size(frame.data) is not None:
            return True
        if self._asked_at is None or frame.arrival - self._asked_at > KEYFRAME_RETRY:
            self._ask(frame)
        return False

    def _ask(self, frame: EncodedFrame) -> None:
        self._asked_at = frame.arrival
        self._request_keyframe(frame.ssrc)

    def _open_track(self, frame: EncodedFrame, first: EncodedFrame) -> _Track | None:
        track = _Track(self.parts / f"{self.participant_id}.{frame.kind}.webm", first, self.zero)
        try:
            track.open(frame)
        except (av.FFmpegError, OSError):
            log.exception("could not open a part file", extra={"participant": self.participant_id})
            self.unsupported.add(frame.codec)
            return None
        self._tracks[frame.kind] = track
        return track

    def new_leg(self, *, request_keyframe: Callable[[int], None]) -> None:
        """The page opened a new leg (after a reconnect): its RTP clocks start afresh, so
        each stream finds its place on the timeline again from its next frame."""
        self._request_keyframe = request_keyframe
        self._first.clear()
        self._rebase = set(self._tracks)
        self._asked_at = None

    def stop(self) -> None:
        """Stop at once: later frames are dropped and the part files are closed."""
        self.open = False
        for track in self._tracks.values():
            try:
                track.close()
            except (av.FFmpegError, OSError):
                log.exception(
                    "closing a part file failed", extra={"participant": self.participant_id}
                )

    @property
    def frames(self) -> dict[str, int]:
        return {kind: t.frames for kind, t in self._tracks.items()}


def part_files(parts: Path, participant_id: str) -> list[Path]:
    return [
        p
        for p in (parts / f"{participant_id}.video.webm", parts / f"{participant_id}.audio.webm")
        if p.exists() and p.stat().st_size > 0
    ]


def _packets(
    container: av.container.InputContainer, out_stream: Any
) -> Iterator[tuple[float, int, Any]]:
    """A part file's packets, with their time in seconds, until the file ends or breaks off
    (a file cut short by a kill ends in a partial cluster)."""
    stream = container.streams[0]
    time_base = stream.time_base or Fraction(1, 1000)
    order = 0
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            packet.stream = out_stream
            order += 1
            yield float(packet.pts * time_base), order, packet
    except (av.FFmpegError, EOFError):
        return


def merge(parts: list[Path], out: Path) -> bool:
    """Copy the part files' packets into one WebM, in time order, without decoding.
    Returns False when there was nothing to write."""
    inputs: list[av.container.InputContainer] = []
    try:
        for part in parts:
            try:
                container = av.open(str(part))
            except (av.FFmpegError, OSError):
                log.warning("a part file could not be read", extra={"file": part.name})
                continue
            if container.streams:
                inputs.append(container)
            else:
                container.close()
        if not inputs:
            return False
        create_private(out)
        with av.open(str(out), "w", format="webm", container_options=CONTAINER_OPTIONS) as output:
            streams = [output.add_stream_from_template(c.streams[0], opaque=True) for c in inputs]
            for _, _, packet in heapq.merge(
                *(_packets(c, s) for c, s in zip(inputs, streams, strict=True)),
                key=lambda item: (item[0], item[1]),
            ):
                output.mux(packet)
        return True
    finally:
        for container in inputs:
            container.close()
