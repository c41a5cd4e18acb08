"""The recorder on its own: real VP8 and Opus packets (encoded here with PyAV) fed in as a
recording leg would, then the files decoded as a player would."""

from __future__ import annotations

import array
import math
from fractions import Fraction
from pathlib import Path

import av
import pytest

from media.encoded_frames import EncodedFrame
from recordings.recorder import ParticipantRecorder, merge, part_files
from tests.integration.recording_peers import decode

FPS = 30
SSRC = 1234


def _vp8(seconds: float, *, key_every: int = 30) -> list[tuple[bytes, int]]:
    """(payload, 90 kHz timestamp) of real VP8 frames of a moving picture."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 320, 240, "yuv420p"
    codec.time_base = Fraction(1, FPS)
    codec.gop_size = key_every
    codec.options = {"deadline": "realtime", "cpu-used": "8"}
    out = []
    for i in range(int(seconds * FPS)):
        frame = av.VideoFrame(320, 240, "yuv420p")
        for n, plane in enumerate(frame.planes):
            plane.update(bytes([(i * 8 + n * 60) % 255]) * plane.buffer_size)
        frame.pts = i
        for packet in codec.encode(frame):
            assert packet.pts is not None
            out.append((bytes(packet), packet.pts * 90000 // FPS))
    return out


def _opus(seconds: float) -> list[tuple[bytes, int]]:
    """(payload, 48 kHz timestamp) of real 20 ms Opus packets of a tone."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate, codec.layout, codec.format = 48000, "stereo", "s16"
    codec.time_base = Fraction(1, 48000)
    out = []
    for i in range(int(seconds * 50)):
        tone = array.array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * 440 * (i * 960 + n // 2) / 48000))
                for n in range(960 * 2)  # interleaved stereo
            ),
        )
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(tone.tobytes())
        frame.sample_rate, frame.pts = 48000, i * 960
        for packet in codec.encode(frame):
            assert packet.pts is not None
            out.append((bytes(packet), packet.pts))
    return out


def _frame(kind: str, data: bytes, timestamp: int, arrival: float) -> EncodedFrame:
    codec, rate = ("vp8", 90000) if kind == "video" else ("opus", 48000)
    return EncodedFrame(kind, codec, data, timestamp, rate, arrival, SSRC)


def _feed(
    recorder: ParticipantRecorder,
    video: list[tuple[bytes, int]],
    audio: list[tuple[bytes, int]],
    start: float,
    *,
    video_ts0: int = 0,
) -> None:
    """Interleave both streams by time, arriving from `start` on the recording's clock."""
    frames = [_frame("video", d, ts - video_ts0, start + ts / 90000) for d, ts in video]
    frames += [_frame("audio", d, ts, start + ts / 48000) for d, ts in audio]
    for frame in sorted(frames, key=lambda f: f.arrival):
        recorder.write(frame)


@pytest.fixture
def asked() -> list[int]:
    return []


def _recorder(tmp_path: Path, asked: list[int]) -> ParticipantRecorder:
    return ParticipantRecorder(tmp_path, "p1", zero=100.0, request_keyframe=asked.append)


def test_both_streams_are_kept_aligned_and_merged(tmp_path: Path, asked: list[int]) -> None:
    recorder = _recorder(tmp_path, asked)
    _feed(recorder, _vp8(3), _opus(3), start=100.5)
    recorder.stop()
    parts = part_files(tmp_path, "p1")
    assert [p.name for p in parts] == ["p1.video.webm", "p1.audio.webm"]
    out = tmp_path / "p1.webm"
    assert merge(parts, out)
    assert (out.stat().st_mode & 0o777) == 0o600
    decoded = decode(out)
    assert decoded.kinds == {"audio", "video"} and decoded.size == (320, 240)
    assert decoded.video_frames == 90 and decoded.audio_frames >= 148
    # The first frames arrived 0.5 s after the gate opened: that is where the file starts.
    assert abs(decoded.first - 0.5) < 0.05
    assert abs(decoded.last - 3.5) < 0.1
    assert asked == [SSRC]  # a key frame was asked for when the leg started


def test_video_waits_for_a_key_frame_and_asks_again(tmp_path: Path, asked: list[int]) -> None:
    recorder = _recorder(tmp_path, asked)
    video = _vp8(3, key_every=45)[10:]  # joins mid-stream: the next key frame is at 1.5 s
    _feed(recorder, video, [], start=100.0, video_ts0=0)
    recorder.stop()
    decoded = decode(part_files(tmp_path, "p1")[0])
    assert decoded.video_frames == 45  # from the key frame at 1.5 s on
    assert abs(decoded.first - 1.5) < 0.05
    # Asked at the start, then every half second until the key frame came.
    assert len(asked) == 3


def test_nothing_is_written_after_the_stop(tmp_path: Path, asked: list[int]) -> None:
    recorder = _recorder(tmp_path, asked)
    video, audio = _vp8(4), _opus(4)
    _feed(recorder, video[:60], audio[:100], start=100.0)
    recorder.stop()
    _feed(recorder, video[60:], audio[100:], start=100.0)
    assert merge(part_files(tmp_path, "p1"), tmp_path / "p1.webm")
    decoded = decode(tmp_path / "p1.webm")
    assert decoded.last <= 2.05
    assert decoded.video_frames == 60


def test_audio_is_written_while_the_video_is_paused(tmp_path: Path, asked: list[int]) -> None:
    # Camera off: the page stops sending video, audio goes on. Audio must reach the disk
    # as it comes, not wait in a muxer for video that does not come.
    recorder = _recorder(tmp_path, asked)
    _feed(recorder, _vp8(1), _opus(6), start=100.0)
    audio_part = tmp_path / "p1.audio.webm"
    size_before_stop = audio_part.stat().st_size
    assert size_before_stop > 20_000  # about 5 s of the 6 s are on disk before the stop
    recorder.stop()
    decoded = decode(audio_part)
    assert decoded.last > 5.9


def test_a_new_leg_continues_the_same_files(tmp_path: Path, asked: list[int]) -> None:
    recorder = _recorder(tmp_path, asked)
    _feed(recorder, _vp8(2), _opus(2), start=100.0)
    recorder.new_leg(request_keyframe=asked.append)
    # The page reconnected: its new leg's RTP clocks start at 0 again, 3 s in.
    _feed(recorder, _vp8(2), _opus(2), start=103.0)
    recorder.stop()
    assert merge(part_files(tmp_path, "p1"), tmp_path / "p1.webm")
    decoded = decode(tmp_path / "p1.webm")
    assert decoded.video_frames == 120
    assert abs(decoded.last - 5.0) < 0.1


def test_other_codecs_are_not_written(tmp_path: Path, asked: list[int]) -> None:
    recorder = _recorder(tmp_path, asked)
    recorder.write(EncodedFrame("video", "h264", b"\x00\x00\x00\x01", 0, 90000, 100.0, SSRC))
    recorder.stop()
    assert recorder.unsupported == {"h264"}
    assert part_files(tmp_path, "p1") == []
    assert not merge([], tmp_path / "p1.webm")
