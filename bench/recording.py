"""Recording benchmark: the server-side recorder against aiortc's stock MediaRecorder.

A separate aiortc sender process streams 640x480 at 30 fps VP8 (a moving test pattern with
temporal noise, 60 frames made before the call and played back and forth) and a 400 Hz
Opus tone, send-only, into a receiving process. What is measured is the receiving process,
over --duration seconds from the moment the sender's connection is up:

  a    Sessionroom's recorder, in-process: the production RecordingLeg (receive-only aiortc
       peer with its receivers tapped, no decoding) feeding a ParticipantRecorder (two part
       files), as recordings/writer.py wires them; at the end `recorder.stop()` and `merge`.
  b    aiortc's MediaRecorder writing WebM (decodes VP8 and Opus, re-encodes with libvpx and
       libopus), the video track added first.
  e2e  (a) through the real server: `signaling.cli serve` with SESSIONROOM_ICE_LOOPBACK=1 in
       its own process; the sender joins over /ws as a therapist alone in a consent room,
       asks to record, says yes, sends `rec_offer` and applies `rec_answer`; at the end the
       therapist sends `recording_stop` and the finished manifest is awaited.

Alongside each of them a control process runs nothing but the same lag ticker over the same
window: its lag is what the shared machine's scheduling alone causes, and its CPU what the
ticker itself costs.

CPU: utime+stime of the receiving process (every thread) over the window, divided by the
window's wall time: percent of one core. Event-loop lag: a task in the receiving process
sleeps 10 ms again and again and records how late it wakes (in the e2e server too, added by
wrapping create_app). Every recorded file is decoded with PyAV afterwards and its frames
counted, so a broken run is visible. Variants alternate round by round, because the two
shared cores are noisy and only same-run figures compare.

Everything is on 127.0.0.1: run it inside a loopback-only network namespace, from the
project root:

  unshare --net -- bash -c 'ip link set lo up && .venv/bin/python -m bench.recording'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import (
    BenchError,
    Targets,
    argument_parser,
    cpu_seconds,
    finished,
    free_port,
    heading,
    log_problems,
    machine_busy_seconds,
    percentile,
    table,
)

# aiortc, av and the project's media code are imported inside the functions that need them:
# every child process (spawned) imports this module, and the control process, which only
# ticks, loads neither aiortc nor PyAV.
if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import av
    from aiortc import MediaStreamTrack

    Conn = Connection[dict[str, Any], dict[str, Any]]

WIDTH, HEIGHT, FPS = 640, 480, 30
LOOP_FRAMES = 60  # made before the call, played forwards and backwards
# Moving content and a little temporal noise, like a camera: VP8 gets a realistic bitrate.
VIDEO_SOURCE = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS},noise=alls=8:allf=t"
TONE_HZ = 400  # 48000 / 400 = 120 samples a period: every 20 ms frame is the same
AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms
TICK = 0.010  # the lag ticker's sleep
STEP_TIMEOUT = 30.0  # any one signalling step
SECRET = "recording-benchmark-secret-" + "0123456789abcdef" * 2
PARTICIPANT = "p1"

TARGET_CPU = 10.0  # % of one core per participant, (a)
TARGET_RATIO = 0.20  # (a) / (b), CPU
TARGET_LAG_P99 = 20.0  # ms, (a)

VARIANTS = ("a", "b", "e2e")
LABELS = {
    "a": "(a) recorder",
    "b": "(b) MediaRecorder",
    "e2e": "(a) e2e server",
}


# ---- measuring ----


@dataclass(frozen=True)
class CpuSnapshot:
    at: float  # time.monotonic(), the same clock as the event loops'
    server: float  # the receiving process, every thread
    server_main: float  # its main thread, the one running the event loop
    sender: float
    machine: float

    @classmethod
    def take(cls, server_pid: int, sender_pid: int | None) -> CpuSnapshot:
        return cls(
            at=time.monotonic(),
            server=cpu_seconds(server_pid),
            server_main=cpu_seconds(server_pid, thread=server_pid),
            sender=cpu_seconds(sender_pid) if sender_pid else 0.0,
            machine=machine_busy_seconds(),
        )


@dataclass(frozen=True)
class Cpu:
    """Percent of one core over a window."""

    seconds: float
    server: float
    server_main: float
    sender: float
    others: float  # the rest of the machine: other processes, the benchmark's own, steal

    @classmethod
    def between(cls, a: CpuSnapshot, b: CpuSnapshot) -> Cpu:
        wall = b.at - a.at
        server, main = b.server - a.server, b.server_main - a.server_main
        sender, machine = b.sender - a.sender, b.machine - a.machine
        return cls(
            seconds=wall,
            server=100 * server / wall,
            server_main=100 * main / wall,
            sender=100 * sender / wall,
            others=100 * max(0.0, machine - server - sender) / wall,
        )

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class Ticker:
    """Sleeps TICK again and again; records how late each wake-up is."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (loop time, lag in seconds)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(TICK)
            now = loop.time()
            self.samples.append((now, now - start - TICK))

    def between(self, t0: float, t1: float) -> list[float]:
        """Lags in milliseconds, of the wake-ups in [t0, t1]."""
        return [1000 * lag for t, lag in self.samples if t0 <= t <= t1]

    def figures(self, t0: float, t1: float, done: float) -> dict[str, Any]:
        """Lags in the window [t0, t1], its five worst (seconds into it, ms), and the
        worst while the recording was being finished, up to `done`."""
        window = [(t - t0, 1000 * lag) for t, lag in self.samples if t0 <= t <= t1]
        return {
            "lags": [lag for _, lag in window],
            "spikes": sorted(window, key=lambda s: -s[1])[:5],
            "finish_seconds": done - t1,
            "finish_lag_max": max(self.between(t1, done), default=0.0),
        }


# ---- talking between processes ----


def send(conn: Conn, message: dict[str, Any]) -> None:
    conn.send(message)


async def receive(conn: Conn, what: str, within: float = STEP_TIMEOUT) -> dict[str, Any]:
    """The next message, which must hold `what`; a child's error is raised here."""

    def get() -> dict[str, Any] | None:
        return conn.recv() if conn.poll(within) else None

    message = await asyncio.to_thread(get)
    if message is None:
        raise BenchError(f"no {what!r} within {within:g} s")
    if "error" in message:
        failure = message["error"]
        raise BenchError(f"a child process failed while the parent awaited {what!r}:\n{failure}")
    if what not in message:
        raise BenchError(f"expected {what!r}, got {sorted(message)}")
    return message


def run_child(conn: Conn, main: Coroutine[Any, Any, None]) -> None:
    """A child process's body: its failure goes to the parent as a message."""
    try:
        asyncio.run(main)
    except BaseException:
        with contextlib.suppress(OSError):
            send(conn, {"error": traceback.format_exc()})
        raise


# ---- the sender ----


def make_frames() -> list[av.VideoFrame]:
    import av

    frames: list[av.VideoFrame] = []
    with av.open(VIDEO_SOURCE, format="lavfi") as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(format="yuv420p"))
            if len(frames) == LOOP_FRAMES:
                break
    return frames


def tone_bytes() -> bytes:
    from array import array

    period = AUDIO_RATE // TONE_HZ
    samples = array(
        "h",
        (round(6000 * math.sin(2 * math.pi * (n % period) / period)) for n in range(AUDIO_SAMPLES)),
    )
    return samples.tobytes()


def sender_tracks() -> tuple[MediaStreamTrack, MediaStreamTrack]:
    import av
    from aiortc import AudioStreamTrack, VideoStreamTrack
    from aiortc.mediastreams import MediaStreamError
    from av.video.frame import PictureType

    frames = make_frames()
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    tone = tone_bytes()

    class LoopedVideo(VideoStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.sent = 0

        async def recv(self) -> av.VideoFrame:
            pts, time_base = await self.next_timestamp()  # paces at 30 fps
            frame = frames[order[self.sent % len(order)]]
            frame.pts, frame.time_base = pts, time_base
            # Decoded frames come marked as key frames, and aiortc marks one when a key frame
            # is asked for: libvpx would encode every frame so marked as a key frame.
            frame.pict_type = PictureType.NONE
            self.sent += 1
            return frame

    class Tone(AudioStreamTrack):
        def __init__(self) -> None:
            super().__init__()
            self.sent = 0
            self.started = 0.0

        async def recv(self) -> av.AudioFrame:
            if self.readyState != "live":
                raise MediaStreamError
            if self.sent:
                due = self.started + self.sent * AUDIO_SAMPLES / AUDIO_RATE
                await asyncio.sleep(due - time.time())
            else:
                self.started = time.time()
            frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
            plane = frame.planes[0]
            plane.update(tone + bytes(plane.buffer_size - len(tone)))
            frame.pts = self.sent * AUDIO_SAMPLES
            frame.sample_rate = AUDIO_RATE
            frame.time_base = Fraction(1, AUDIO_RATE)
            self.sent += 1
            return frame

    return LoopedVideo(), Tone()


async def _sender(conn: Conn) -> None:
    """Offers VP8 video and Opus audio, send-only, with every candidate; streams until told
    to stop; reports what it sent."""
    from aiortc import (
        RTCConfiguration,
        RTCPeerConnection,
        RTCRtpSender,
        RTCSessionDescription,
    )

    from media.ice import allow_loopback_candidates

    allow_loopback_candidates()
    video_track, audio_track = sender_tracks()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    connected = asyncio.Event()

    @pc.on("connectionstatechange")
    def state_changed() -> None:
        if pc.connectionState == "connected":
            connected.set()

    for track, mime in ((video_track, "video/VP8"), (audio_track, "audio/opus")):
        transceiver = pc.addTransceiver(track, direction="sendonly")
        codecs = RTCRtpSender.getCapabilities(track.kind).codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() == mime.lower()])
    await pc.setLocalDescription(await pc.createOffer())
    send(conn, {"offer": pc.localDescription.sdp})
    answer = await receive(conn, "answer")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["answer"], type="answer"))
    await asyncio.wait_for(connected.wait(), STEP_TIMEOUT)
    started = time.monotonic()
    send(conn, {"connected": started})
    # What it sent up to the end of the measured window, then on until told to stop.
    await receive(conn, "stats", within=3600)
    sent: dict[str, Any] = {"seconds": time.monotonic() - started}
    for transceiver in pc.getTransceivers():
        kind = transceiver.kind
        for stats in (await transceiver.sender.getStats()).values():
            if stats.type == "outbound-rtp":
                sent[f"{kind}_bytes"] = stats.bytesSent
                sent[f"{kind}_packets"] = stats.packetsSent
    sent["video_frames"] = getattr(video_track, "sent", 0)
    sent["audio_frames"] = getattr(audio_track, "sent", 0)
    send(conn, {"stats": sent})
    await receive(conn, "stop", within=3600)
    await pc.close()
    send(conn, {"stopped": True})


def sender_main(conn: Conn) -> None:
    run_child(conn, _sender(conn))


# ---- the receiving process: (a), (b), or the control (idle) ----


async def _receiver(conn: Conn, variant: str, folder: str, duration: float, profile: bool) -> None:
    from media.ice import allow_loopback_candidates

    allow_loopback_candidates()
    ticker = Ticker()
    tick = asyncio.create_task(ticker.run())
    work = Path(folder)
    sender_pid: int | None = None
    recording: Recording
    if variant == "idle":
        recording = Idle()
    else:
        offer = await receive(conn, "offer")
        sender_pid = offer["sender_pid"]
        if variant == "a":
            recording = Recorder(work)
        elif variant == "b":
            recording = StockRecorder(work)
        else:
            raise BenchError(f"unknown variant {variant!r}")
        send(conn, {"answer": await recording.accept(offer["offer"])})

    await receive(conn, "start")
    pid = os.getpid()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    before = CpuSnapshot.take(pid, sender_pid)
    await asyncio.sleep(duration)
    after = CpuSnapshot.take(pid, sender_pid)
    if profiler is not None:
        profiler.disable()
    send(conn, {"window_end": True})
    finished = await recording.finish()
    done = time.monotonic()
    tick.cancel()
    result: dict[str, Any] = {
        "cpu": Cpu.between(before, after).to_dict(),
        **ticker.figures(before.at, after.at, done),
        **finished,
    }
    if profiler is not None:
        import io
        import pstats

        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        result["profile"] = out.getvalue()
    send(conn, {"result": result})


def receiver_main(conn: Conn, variant: str, folder: str, duration: float, profile: bool) -> None:
    run_child(conn, _receiver(conn, variant, folder, duration, profile))


class Recording:
    async def accept(self, offer_sdp: str) -> str:
        raise NotImplementedError

    async def finish(self) -> dict[str, Any]:
        """Stop recording and finish the file; what to report."""
        raise NotImplementedError


class Idle(Recording):
    async def finish(self) -> dict[str, Any]:
        return {}


class Recorder(Recording):
    """(a): the production classes, wired as recordings/writer.py wires them."""

    def __init__(self, work: Path) -> None:
        from media.ice import rtc_configuration
        from media.recording_leg import RecordingLeg
        from recordings.recorder import ParticipantRecorder

        self.parts = work / "parts"
        self.parts.mkdir()
        self.out = work / f"{PARTICIPANT}.webm"
        self.keyframe_requests = 0
        self.lost = 0
        legs: list[RecordingLeg] = []

        def keyframe(ssrc: int) -> None:
            self.keyframe_requests += 1
            if legs:
                legs[0].request_keyframe(ssrc)

        def lost() -> None:
            self.lost += 1

        loop = asyncio.get_running_loop()
        self.recorder = ParticipantRecorder(
            self.parts, PARTICIPANT, zero=loop.time(), request_keyframe=keyframe
        )
        self.leg = RecordingLeg(
            rtc_configuration([]), self.recorder.write, on_lost=lost, ids={"participant": "p1"}
        )
        legs.append(self.leg)

    async def accept(self, offer_sdp: str) -> str:
        return await self.leg.accept(offer_sdp)

    async def finish(self) -> dict[str, Any]:
        from recordings.recorder import merge, part_files

        self.leg.stop_writing()
        self.recorder.stop()
        await self.leg.close()
        merged = await asyncio.to_thread(merge, part_files(self.parts, PARTICIPANT), self.out)
        return {
            "file": str(self.out) if merged else None,
            "written": self.recorder.frames,
            "keyframe_requests": self.keyframe_requests,
            "leg_lost": self.lost,
            "unsupported": sorted(self.recorder.unsupported),
        }


class StockRecorder(Recording):
    """(b): a plain aiortc peer whose tracks go to MediaRecorder (video added first)."""

    def __init__(self, work: Path) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.contrib.media import MediaRecorder

        self.out = work / f"{PARTICIPANT}-stock.webm"
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.recorder = MediaRecorder(str(self.out))
        self.tracks: dict[str, MediaStreamTrack] = {}

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self.tracks[track.kind] = track

    async def accept(self, offer_sdp: str) -> str:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        # With audio muxed first, MediaRecorder opens the video encoder before it knows the
        # size and records no video at all (docs/recording-design.md, pitfall 2).
        for kind in ("video", "audio"):
            self.recorder.addTrack(self.tracks[kind])
        await self.recorder.start()
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return str(self.pc.localDescription.sdp)

    async def finish(self) -> dict[str, Any]:
        await self.recorder.stop()
        await self.pc.close()
        return {"file": str(self.out)}


# ---- (a) through the real server ----


def server_main(env: dict[str, str], lag_path: str, log_path: str) -> None:
    """`sessionroom serve`, with a lag ticker added to its event loop; the samples are
    written to `lag_path` when the server stops."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(env)

    from aiohttp import web

    import signaling.cli as cli
    from signaling.app import create_app

    ticker = Ticker()

    def save() -> None:
        Path(lag_path).write_text(json.dumps(ticker.samples))

    async def run_ticker(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(ticker.run())
        yield
        task.cancel()
        save()  # at shutdown, after the measurement

    def with_ticker(*args: Any, **kwargs: Any) -> web.Application:
        app = create_app(*args, **kwargs)
        app.cleanup_ctx.append(run_ticker)
        return app

    vars(cli)["create_app"] = with_ticker  # serve() looks it up in its module
    raise SystemExit(cli.main(["serve"]))


class Socket:
    """The therapist page's /ws connection, played by the benchmark process (the sender
    process plays its recording leg): every message is read at once, so that pings are
    answered, and kept in a queue."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.errors: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message: dict[str, Any] = json.loads(raw.data)
            if message.get("type") == "error":
                self.errors.append(message)
            await self.queue.put(message)

    async def send(self, **message: Any) -> None:
        await self.ws.send_str(json.dumps(message))

    async def expect(self, kind: str, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(STEP_TIMEOUT):
            while True:
                message = await self.queue.get()
                if message.get("type") == "error":
                    raise BenchError(f"the server sent {message} awaiting {kind!r}")
                if message.get("type") == kind and all(
                    message.get(k) == v for k, v in match.items()
                ):
                    return message


async def run_e2e(ctx: Any, work: Path, duration: float) -> dict[str, Any]:
    import aiohttp

    from signaling.core.model import RecordingMode, Role, RoomSettings
    from signaling.tokens import KeyRing

    port = free_port()
    recordings = work / "recordings"
    lag_path, log_path = work / "lag.json", work / "server.log"
    env = {
        "SESSIONROOM_SECRET": SECRET,
        "SESSIONROOM_HOST": "127.0.0.1",
        "SESSIONROOM_PORT": str(port),
        "SESSIONROOM_STATE_DIR": str(work / "state"),
        "SESSIONROOM_RECORDINGS_DIR": str(recordings),
        "SESSIONROOM_ICE_LOOPBACK": "1",
        "SESSIONROOM_LOG_LEVEL": "warning",
    }
    server = ctx.Process(target=server_main, args=(env, str(lag_path), str(log_path)))
    sconn, sender_end = ctx.Pipe()
    sender = ctx.Process(target=sender_main, args=(sender_end,), daemon=True)
    now = int(time.time())
    token = KeyRing(SECRET.encode()).mint(
        room="bench-recording",
        role=Role.THERAPIST,
        name="Therapist",
        not_before=now - 5,
        expires=now + 3600,
        room_settings=RoomSettings(recording=RecordingMode.CONSENT),
    )
    server.start()
    control = Control(ctx, work, duration)
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + STEP_TIMEOUT
            while True:
                if not server.is_alive():
                    raise BenchError(f"the server exited:\n{log_path.read_text()[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            break
                if time.monotonic() > deadline:
                    raise BenchError("the server did not answer /healthz")
                await asyncio.sleep(0.1)
            async with http.ws_connect(f"{base}/ws") as ws:
                peer = Socket(ws)
                await peer.send(type="join", token=token)
                await peer.expect("joined")
                await peer.send(type="recording_request")
                request = (await peer.expect("consent_request"))["request"]
                await peer.send(type="consent", request=request, granted=True)
                recording = (await peer.expect("recording_state", status="recording"))["recording"]
                sender.start()
                offer = await receive(sconn, "offer")
                await peer.send(type="rec_offer", recording=recording, sdp=offer["offer"])
                answer = await peer.expect("rec_answer")
                send(sconn, {"answer": answer["sdp"]})
                await receive(sconn, "connected")
                before = CpuSnapshot.take(server.pid, sender.pid)
                control.begin()
                await asyncio.sleep(duration)
                after = CpuSnapshot.take(server.pid, sender.pid)
                send(sconn, {"stats": True})
                sent = (await receive(sconn, "stats"))["stats"]
                control_result = await control.result()
                await peer.send(type="recording_stop")
                await peer.expect("recording_state", status="stopped")
                manifest_path = recordings / recording / "manifest.json"
                while True:
                    if manifest_path.exists():
                        manifest = json.loads(manifest_path.read_text())
                        if manifest["status"] != "recording":
                            break
                    if time.monotonic() - after.at > STEP_TIMEOUT:
                        raise BenchError(f"{recording} was not finished")
                    await asyncio.sleep(0.02)
                done = time.monotonic()
                send(sconn, {"stop": True})
                await receive(sconn, "stopped")
                await peer.send(type="leave")
                await peer.expect("left")
        files = manifest["files"]
    finally:
        if server.is_alive():
            server.terminate()
        server.join(30)
        if server.is_alive():
            server.kill()
        stop_child(sender)
        control.stop()
    ticker = Ticker()
    ticker.samples = [(t, lag) for t, lag in json.loads(lag_path.read_text())]
    _, problems = log_problems(log_path)
    return {
        "cpu": Cpu.between(before, after).to_dict(),
        **ticker.figures(before.at, after.at, done),
        "file": str(recordings / recording / files[0]["name"]) if files else None,
        "manifest_files": files,
        "server_log_problems": problems,
        "sent": sent,
        "control": control_result,
    }


# ---- the parent ----


def stop_child(process: Any) -> None:
    if process.pid is None:  # never started
        return
    process.join(10)
    if process.is_alive():
        process.terminate()
        process.join(10)


class Control:
    """A process with nothing but the lag ticker, measured over the same window."""

    def __init__(self, ctx: Any, work: Path, duration: float) -> None:
        self.duration = duration
        self.conn, end = ctx.Pipe()
        self.process = ctx.Process(
            target=receiver_main, args=(end, "idle", str(work), duration, False), daemon=True
        )
        self.process.start()

    def begin(self) -> None:
        send(self.conn, {"start": True})

    async def result(self) -> dict[str, Any]:
        await receive(self.conn, "window_end", self.duration + STEP_TIMEOUT)
        return dict((await receive(self.conn, "result"))["result"])

    def stop(self) -> None:
        stop_child(self.process)


async def run_local(
    ctx: Any, variant: str, work: Path, duration: float, profile: bool
) -> dict[str, Any]:
    rconn, receiver_end = ctx.Pipe()
    receiver = ctx.Process(
        target=receiver_main,
        args=(receiver_end, variant, str(work), duration, profile),
        daemon=True,
    )
    receiver.start()
    control = Control(ctx, work, duration)
    sender = None
    try:
        sconn, sender_end = ctx.Pipe()
        sender = ctx.Process(target=sender_main, args=(sender_end,), daemon=True)
        sender.start()
        offer = await receive(sconn, "offer")
        send(rconn, {"offer": offer["offer"], "sender_pid": sender.pid})
        answer = await receive(rconn, "answer")
        send(sconn, {"answer": answer["answer"]})
        await receive(sconn, "connected")
        send(rconn, {"start": True})
        control.begin()
        await receive(rconn, "window_end", duration + STEP_TIMEOUT)
        send(sconn, {"stats": True})
        sent = (await receive(sconn, "stats"))["stats"]
        result: dict[str, Any] = (await receive(rconn, "result", 600))["result"]
        # The sender keeps its connection until the recording is finished, as a page would.
        send(sconn, {"stop": True})
        await receive(sconn, "stopped")
        return {**result, "sent": sent, "control": await control.result()}
    finally:
        for process in (receiver, sender):
            if process is not None:
                stop_child(process)
        control.stop()


@dataclass
class FileCheck:
    """What a player finds in a recorded file: every packet decoded."""

    path: str
    bytes: int = 0
    container_seconds: float = 0.0
    codecs: list[str] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)
    video_frames: int = 0
    audio_frames: int = 0
    video_span: tuple[float, float] = (math.nan, math.nan)
    audio_span: tuple[float, float] = (math.nan, math.nan)
    video_bytes: int = 0
    decode_errors: int = 0
    problem: str = ""

    @property
    def video_fps(self) -> float:
        first, last = self.video_span
        return (self.video_frames - 1) / (last - first) if last > first else math.nan

    @property
    def video_missing(self) -> int:
        """Frames the span of the video should hold at 30 fps and does not: gaps."""
        first, last = self.video_span
        if not last > first:
            return 0
        return max(0, round((last - first) * FPS) + 1 - self.video_frames)

    @property
    def video_kbps(self) -> float:
        first, last = self.video_span
        return 8 * self.video_bytes / (last - first) / 1000 if last > first else math.nan

    def line(self) -> str:
        if self.problem:
            return f"file PROBLEM: {self.problem}"
        return (
            f"file {self.container_seconds:.2f} s, {self.bytes / 1e6:.2f} MB,"
            f" {'+'.join(self.codecs)} {self.size[0]}x{self.size[1]};"
            f" video {self.video_frames} frames {self.video_span[0]:.2f}-{self.video_span[1]:.2f}"
            f" s ({self.video_fps:.1f} fps, {self.video_missing} missing in gaps,"
            f" {self.video_kbps:.0f} kbps); audio {self.audio_frames} frames"
            f" {self.audio_span[0]:.2f}-{self.audio_span[1]:.2f} s;"
            f" {self.decode_errors} decode errors"
        )


def check_file(path: str | None) -> FileCheck:
    import av

    if path is None or not Path(path).exists():
        return FileCheck(str(path), problem="no file was written")
    check = FileCheck(path, bytes=Path(path).stat().st_size)
    video: list[float] = []
    audio: list[float] = []
    try:
        with av.open(path) as container:
            if container.duration is not None:
                check.container_seconds = container.duration / 1_000_000
            check.codecs = [s.codec_context.name for s in container.streams]
            for packet in container.demux():
                if packet.size == 0:
                    continue
                if packet.stream.type == "video":
                    check.video_bytes += packet.size
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    check.decode_errors += 1
                    continue
                for frame in frames:
                    if isinstance(frame, av.VideoFrame):
                        check.size = (frame.width, frame.height)
                        video.append(frame.time or 0.0)
                    elif isinstance(frame, av.AudioFrame):
                        start = frame.time or 0.0
                        audio += [start, start + frame.samples / frame.sample_rate]
                        check.audio_frames += 1
    except (av.FFmpegError, OSError) as e:
        check.problem = f"{type(e).__name__}: {e}"
    check.video_frames = len(video)
    if video:
        check.video_span = (min(video), max(video))
    if audio:
        check.audio_span = (min(audio), max(audio))
    if not check.problem and (not video or not audio):
        check.problem = f"missing a stream: {check.video_frames} video, {check.audio_frames} audio"
    return check


@dataclass
class Run:
    variant: str
    round: int
    cpu: Cpu
    lags: list[float]
    finish_seconds: float
    finish_lag_max: float
    spikes: list[tuple[float, float]]
    file: FileCheck
    control_lags: list[float]  # the control process's, over the same window
    control_cpu: float
    extra: dict[str, Any]

    def lag(self, q: float) -> float:
        return percentile(self.lags, q)

    def control_lag(self, q: float) -> float:
        return percentile(self.control_lags, q)


def summarise(variant: str, rnd: int, raw: dict[str, Any]) -> Run:
    control = raw["control"]
    control_cpu = float(control["cpu"]["server"])
    cpu = Cpu(**raw["cpu"])
    # The control process is one of the "other processes" as measured: take it out.
    cpu = replace(cpu, others=max(0.0, cpu.others - control_cpu))
    known = ("cpu", "lags", "finish_seconds", "finish_lag_max", "spikes", "file", "control")
    return Run(
        variant,
        rnd,
        cpu,
        list(raw["lags"]),
        float(raw["finish_seconds"]),
        float(raw["finish_lag_max"]),
        [(float(t), float(ms)) for t, ms in raw["spikes"]],
        check_file(raw.get("file")),
        list(control["lags"]),
        control_cpu,
        {k: v for k, v in raw.items() if k not in known},
    )


def print_run(run: Run) -> None:
    c = run.cpu
    print(
        f"[{LABELS[run.variant]}] round {run.round + 1}: CPU {c.server:.1f}% of a core"
        f" (event-loop thread {c.server_main:.1f}%) over {c.seconds:.1f} s; lag p50"
        f" {run.lag(0.5):.2f} / p99 {run.lag(0.99):.2f} / max {run.lag(1.0):.1f} ms"
        f" ({len(run.lags)} ticks); sender {c.sender:.0f}%, others {c.others:.0f}%",
        flush=True,
    )
    print(
        f"    control process, same window: lag p50 {run.control_lag(0.5):.2f} / p99"
        f" {run.control_lag(0.99):.2f} / max {run.control_lag(1.0):.1f} ms,"
        f" CPU {run.control_cpu:.1f}%"
    )
    spikes = ", ".join(f"{ms:.1f} ms at {t:.1f} s" for t, ms in run.spikes[:3])
    print(f"    worst lags: {spikes}; finishing took {run.finish_seconds:.2f} s"
          f" (lag max {run.finish_lag_max:.1f} ms)")  # fmt: skip
    sent = run.extra.get("sent", {})
    seconds = sent.get("seconds") or math.nan
    print(
        f"    sender: {sent.get('video_frames')} video frames,"
        f" {8 * sent.get('video_bytes', 0) / seconds / 1000:.0f} kbps video,"
        f" {8 * sent.get('audio_bytes', 0) / seconds / 1000:.0f} kbps audio"
        f" over {seconds:.1f} s"
    )
    if "written" in run.extra:
        print(
            f"    recorder: {run.extra['written']} frames written, keyframe requests"
            f" {run.extra['keyframe_requests']}, leg lost {run.extra['leg_lost']},"
            f" unsupported {run.extra['unsupported'] or 'none'}"
        )
    if run.extra.get("server_log_problems"):
        print("    server log:", *run.extra["server_log_problems"], sep="\n      ")
    print(f"    {run.file.line()}", flush=True)
    if "profile" in run.extra:
        print(run.extra["profile"])


def report(args: argparse.Namespace, runs: list[Run]) -> bool:
    print()
    print(
        heading("Recording benchmark") + f"; {args.rounds} round(s) of {args.duration:g} s"
        " per variant, 640x480@30 VP8 + Opus from a separate aiortc process."
    )
    rows = []
    for run in runs:
        f = run.file
        rows.append(
            (
                LABELS[run.variant],
                str(run.round + 1),
                f"{run.cpu.server:.1f}",
                f"{run.cpu.server_main:.1f}",
                f"{run.lag(0.5):.2f}",
                f"{run.lag(0.99):.2f}",
                f"{run.lag(1.0):.1f}",
                f"{run.control_lag(0.99):.2f}",
                f"{run.cpu.sender:.0f}",
                f"{run.cpu.others:.0f}",
                f"{run.extra.get('sent', {}).get('video_frames')} / {f.video_frames}"
                f" / {f.video_missing}",
                f"{f.video_span[1] - f.video_span[0]:.1f}",
                f"{f.audio_frames}",
                f"{f.video_kbps:.0f}",
            )
        )
    table(
        (
            "variant",
            "round",
            "CPU %",
            "loop thread %",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "control p99 ms",
            "sender %",
            "others %",
            "video frames sent / in file / gaps",
            "video span s",
            "audio frames",
            "video kbps",
        ),
        rows,
    )

    def of(variant: str) -> list[Run]:
        return [r for r in runs if r.variant == variant]

    ratios = []
    for rnd in range(args.rounds):
        a = [r for r in of("a") if r.round == rnd]
        b = [r for r in of("b") if r.round == rnd]
        if a and b and b[0].cpu.server:
            ratios.append(a[0].cpu.server / b[0].cpu.server)
    print()
    summary = []
    for variant in ("a", "b", "e2e"):
        got = of(variant)
        if not got:
            continue
        cpus = [r.cpu.server for r in got]
        p99s = [r.lag(0.99) for r in got]
        summary.append(
            (
                LABELS[variant],
                f"{statistics.median(cpus):.1f} ({min(cpus):.1f}-{max(cpus):.1f})",
                f"{max(p99s):.2f}",
                f"{max(r.lag(1.0) for r in got):.1f}",
                f"{max(r.control_lag(0.99) for r in got):.2f}",
            )
        )
    table(
        (
            "variant",
            "CPU % median (range)",
            "worst lag p99 ms",
            "worst lag max ms",
            "worst control p99 ms",
        ),
        summary,
    )
    controls = [r.control_cpu for r in runs]
    print(f"The control process (ticker only) used {min(controls):.1f}-{max(controls):.1f}% CPU.")
    if ratios:
        print(
            "CPU ratio (a)/(b) per round: "
            + ", ".join(f"{x:.3f}" for x in ratios)
            + f"; median {statistics.median(ratios):.3f}"
        )

    print()
    targets = Targets()
    for variant in ("a", "e2e"):
        got = of(variant)
        if not got:
            continue
        worst = max(r.cpu.server for r in got)
        targets.check(
            worst <= TARGET_CPU,
            f"{LABELS[variant]}: <= {TARGET_CPU:g}% of a core per participant:"
            f" {worst:.1f}% in the worst round",
        )
        p99 = max(r.lag(0.99) for r in got)
        targets.check(
            p99 <= TARGET_LAG_P99,
            f"{LABELS[variant]}: event-loop lag p99 <= {TARGET_LAG_P99:g} ms:"
            f" {p99:.2f} ms in the worst round",
        )
    if ratios:
        worst_ratio = max(ratios)
        targets.check(
            worst_ratio <= TARGET_RATIO,
            f"(a) CPU <= {TARGET_RATIO:.0%} of (b)'s: {worst_ratio:.1%} in the worst round",
        )
    for r in runs:
        if r.file.problem:
            print(f"  ! {LABELS[r.variant]} round {r.round + 1}: {r.file.problem}")
    return targets.met


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argument_parser("bench.recording", __doc__)
    add = parser.add_argument
    add("--duration", type=float, default=20.0, help="measured seconds per run (20)")
    add("--rounds", type=int, default=2, help="rounds; each runs every variant once (2)")
    add(
        "--variants",
        default="a,b,e2e",
        help="comma-separated, from a, b, e2e (a,b,e2e)",
    )
    add("--keep", type=Path, help="keep the recorded files in this folder")
    add("--profile", action="store_true", help="cProfile (a)'s event-loop thread (slows it)")
    add("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    if not set(args.variants) <= set(VARIANTS) or args.rounds < 1 or args.duration <= 0:
        parser.error("--variants from a,b,e2e; --rounds >= 1; --duration > 0")
    return args


def keep(path: Path, target: Path) -> None:
    if path.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


async def run(args: argparse.Namespace, root: Path) -> list[Run]:
    ctx = multiprocessing.get_context("spawn")
    runs: list[Run] = []
    plan: list[tuple[int, str]] = []
    for rnd in range(args.rounds):
        # Alternate the order, so that drift in the machine's load is shared.
        order = args.variants if rnd % 2 == 0 else args.variants[::-1]
        plan += [(rnd, v) for v in order]
    for n, (rnd, variant) in enumerate(plan):
        work = root / f"{n:02d}-{variant}"
        work.mkdir()
        if variant == "e2e":
            raw = await run_e2e(ctx, work, args.duration)
        else:
            raw = await run_local(
                ctx, variant, work, args.duration, args.profile and variant == "a"
            )
        r = summarise(variant, rnd, raw)
        runs.append(r)
        print_run(r)
        if args.keep:
            keep(Path(r.file.path), args.keep / f"round{rnd + 1}-{variant}.webm")
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/stat").exists():
        raise SystemExit("needs Linux /proc")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-recording-") as tmp:
        runs = asyncio.run(run(args, Path(tmp)))
    met = report(args, runs)
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "variant": r.variant,
                        "round": r.round + 1,
                        "cpu": r.cpu.to_dict(),
                        "lag_ms": {"p50": r.lag(0.5), "p99": r.lag(0.99), "max": r.lag(1.0)},
                        "control_lag_ms": {"p99": r.control_lag(0.99), "max": r.control_lag(1.0)},
                        "file": r.file.__dict__,
                    }
                    for r in runs
                ],
                indent=1,
            )
        )
    finished(met, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
