"""The recordings this node is writing: their legs, recorders, files and manifests.

Recording control (recordings/control.py) decides from the room's committed events when a
recording begins and is cut; this does the I/O of one recording from its first manifest to
its merged files. A recording's legs live on the node that holds each participant's socket,
so with several nodes each writes the parts of its own legs and merges them when cut.
The recording leg and the recorder are imported inside the methods that use them, but every
node loads PyAV and aiortc as it starts all the same: recordings/manifest.py imports PyAV, and
the start-up `recover` (recordings/control.py) imports the recorder, which imports aiortc.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from media.ice import IceServer, rtc_configuration
from media.turn import TurnConfig, ice_servers_for
from recordings.ledger import ConsentLedger, LedgerEntry, LedgerEvent
from recordings.manifest import Manifest, ManifestStatus, ParticipantInfo, describe_file
from recordings.storage import RecordingStorage
from signaling.core.errors import NotFound, RecordingNotActive
from signaling.core.gate import Gate, Reason
from signaling.core.model import RoomState

if TYPE_CHECKING:
    from media.recording_leg import RecordingLeg
    from recordings.recorder import ParticipantRecorder

log = logging.getLogger("sessionroom.recordings")

LEG_CLOSE_TIMEOUT = 5.0
ENDED_KEPT = 1000


@dataclass(frozen=True)
class RecordingLoad:
    recordings: int
    legs: int


@dataclass
class ActiveRecording:
    id: str
    room: str
    request: str
    started_at: float  # wall clock
    zero: float  # the same moment on the event loop's clock
    parts: Path
    recorders: dict[str, ParticipantRecorder] = field(default_factory=dict)
    legs: dict[str, RecordingLeg] = field(default_factory=dict)


class RecordingWriter:
    def __init__(
        self,
        storage: RecordingStorage,
        ledger: ConsentLedger,
        *,
        ice_servers: Sequence[IceServer] = (),
        turn: TurnConfig | None = None,
        node_id: str = "",
        clock: Callable[[], float],
    ) -> None:
        self.storage = storage
        self.ledger = ledger  # read only: a manifest keeps its request's entries
        self._ice = tuple(ice_servers)
        # This node's own aiortc peer may use the relay too, as TURN user `node-<node id>`.
        self._turn = turn
        self._turn_user = f"node-{node_id}"
        self.clock = clock
        self._active: dict[str, ActiveRecording] = {}
        self._finishing: set[asyncio.Task[None]] = set()
        self._finishing_ids: set[str] = set()  # cut here, files not yet finished
        self._ended: deque[str] = deque(maxlen=ENDED_KEPT)  # recordings stopped on this node

    def ice_servers(self) -> tuple[IceServer, ...]:
        """For this node's own peer connections: the configured list, with fresh TURN."""
        return ice_servers_for(self._turn_user, self._ice, self._turn, now=self.clock())

    def has(self, recording_id: str) -> bool:
        """Whether this node is writing the recording or still finishing its files."""
        return recording_id in self._active or recording_id in self._finishing_ids

    @property
    def load(self) -> RecordingLoad:
        active = self._active.values()
        return RecordingLoad(len(active), sum(len(a.legs) for a in active))

    @property
    def writing(self) -> dict[str, str]:
        """The recordings this node is writing: recording id -> room id."""
        return {a.id: a.room for a in self._active.values()}

    # ---- start ----

    def begin(self, room: RoomState) -> ActiveRecording:
        """The gate opened: make the recording's folder and its first manifest."""
        gate = room.recording
        assert gate.recording is not None and gate.started_at is not None
        existing = self._active.get(gate.recording)
        if existing is not None:
            return existing
        if gate.recording in self._ended:
            raise RecordingNotActive()  # a late offer must not reopen a stopped recording
        loop_now = asyncio.get_running_loop().time()
        folder = self.storage.folder(gate.recording)
        active = ActiveRecording(
            id=gate.recording,
            room=room.id,
            request=gate.request or "",
            started_at=gate.started_at,
            zero=loop_now - (self.clock() - gate.started_at),
            parts=self.storage.parts_folder(gate.recording),
        )
        self._active[active.id] = active
        with manifest_lock(folder):
            # The first node to begin writes it; another node's legs join the same one.
            try:
                self.storage.read_manifest(active.id)
            except NotFound:
                self.storage.write_manifest(_manifest(room, gate))
        log.info("recording started", extra={"room": room.id, "recording": active.id})
        return active

    # ---- legs ----

    async def offer(self, room: RoomState, participant: str, recording: str, sdp: str) -> str:
        """A browser's recording leg: accept it and return the answer's SDP."""
        from media.recording_leg import RecordingLeg, check_offer
        from recordings.recorder import ParticipantRecorder

        gate = room.recording
        if recording != gate.recording or gate.answer_of(participant) is not True:
            raise RecordingNotActive()
        check_offer(sdp)
        active = self._active.get(recording) or self.begin(room)
        ids = {"room": room.id, "participant": participant, "recording": recording}
        old = active.legs.pop(participant, None)
        if old is not None:  # the page reconnected and opened a new leg: it replaces the old
            old.stop_writing()
            await _close_leg(old, ids)
        recorder = active.recorders.get(participant)
        leg_holder: list[RecordingLeg] = []

        def keyframe(ssrc: int) -> None:
            if leg_holder:
                leg_holder[0].request_keyframe(ssrc)

        if recorder is None:
            recorder = ParticipantRecorder(
                active.parts, participant, active.zero, request_keyframe=keyframe
            )
            active.recorders[participant] = recorder
        else:
            recorder.new_leg(request_keyframe=keyframe)

        def lost() -> None:
            log.warning("recording leg lost", extra=ids)

        leg = RecordingLeg(
            rtc_configuration(self.ice_servers()), recorder.write, on_lost=lost, ids=ids
        )
        leg_holder.append(leg)
        if self._active.get(recording) is not active:
            raise RecordingNotActive()
        active.legs[participant] = leg
        try:
            answer = await leg.accept(sdp)
        except Exception:
            active.legs.pop(participant, None)
            await _close_leg(leg, ids)
            raise
        if self._active.get(recording) is not active:
            # The gate closed while we answered.
            await _close_leg(leg, ids)
            raise RecordingNotActive()
        log.info("recording leg accepted", extra=ids)
        return answer

    # ---- stop ----

    def cut(self, recording_id: str, reason: Reason, stopped_at: float) -> None:
        """The gate closed: from this instant nothing more is written. The files are
        finished in the background (legs closed, parts merged, manifest written)."""
        self._ended.append(recording_id)
        active = self._active.pop(recording_id, None)
        if active is None:
            return
        for leg in active.legs.values():
            leg.stop_writing()
        for recorder in active.recorders.values():
            recorder.stop()
        log.info(
            "recording stopped",
            extra={"room": active.room, "recording": active.id, "reason": str(reason)},
        )
        self._finishing_ids.add(active.id)
        task = asyncio.create_task(self._finish(active, reason, stopped_at))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(self, active: ActiveRecording, reason: Reason, stopped_at: float) -> None:
        ids = {"room": active.room, "recording": active.id}
        try:
            await asyncio.gather(*(_close_leg(leg, ids) for leg in active.legs.values()))
            await self.finish_files(
                active.id, set(active.recorders), reason, stopped_at, ManifestStatus.COMPLETE
            )
        except Exception:
            log.exception("finishing a recording failed", extra=ids)
        finally:
            self._finishing_ids.discard(active.id)

    async def finish_files(
        self,
        recording_id: str,
        mine: set[str] | None,
        reason: Reason,
        stopped_at: float,
        status: ManifestStatus,
    ) -> None:
        """Merge the parts of `mine` (None: every participant's) into their files, then add
        them to the manifest, off the event loop. With several nodes, each merges the
        participants whose legs it held; the manifest takes `status` when no parts are left."""
        await asyncio.to_thread(self._write_files, recording_id, mine, reason, stopped_at, status)

    def _write_files(
        self,
        recording_id: str,
        mine: set[str] | None,
        reason: Reason,
        stopped_at: float,
        status: ManifestStatus,
    ) -> None:
        from recordings.recorder import merge, part_files

        folder = self.storage.folder(recording_id)
        parts = self.storage.parts_folder(recording_id)
        manifest = self.storage.read_manifest(recording_id)
        merged = []
        for p in manifest.participants:
            if mine is not None and p.id not in mine:
                continue
            found = part_files(parts, p.id)
            out = folder / f"{p.id}.webm"
            if found and merge(found, out):
                merged.append(describe_file(out, p.id))
            for part in found:
                part.unlink(missing_ok=True)
        with manifest_lock(folder):
            manifest = self.storage.read_manifest(recording_id)  # others may have added
            files = {f.participant: f for f in (*manifest.files, *merged)}
            left = any(part_files(parts, p.id) for p in manifest.participants)
            self.storage.write_manifest(
                replace(
                    manifest,
                    status=manifest.status if left else status,
                    stopped_at=manifest.stopped_at or stopped_at,
                    stop_reason=manifest.stop_reason or str(reason),
                    files=tuple(files[p.id] for p in manifest.participants if p.id in files),
                    ledger=_consent_trail(self.ledger.entries(), manifest),
                )
            )
            if not left:
                shutil.rmtree(parts, ignore_errors=True)

    async def close(self) -> None:
        """Cut whatever is still being written and wait for every recording's files."""
        for recording_id in list(self._active):
            self.cut(recording_id, Reason.SERVER_STOPPED, self.clock())
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)


@contextlib.contextmanager
def manifest_lock(folder: Path) -> Iterator[None]:
    """Several nodes (processes on one host, one shared folder) change one manifest."""
    fd = os.open(folder / ".manifest.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


async def _close_leg(leg: RecordingLeg, ids: dict[str, str]) -> None:
    try:
        await asyncio.wait_for(leg.close(), LEG_CLOSE_TIMEOUT)
    except Exception:
        log.warning("closing a recording leg failed", extra=ids)


def _consent_trail(entries: list[LedgerEntry], manifest: Manifest) -> tuple[LedgerEntry, ...]:
    """The request's ledger entries up to this recording's stop (a later recording of the
    same request, after a newcomer's yes, has its own manifest)."""
    trail = []
    for entry in entries:
        if entry.request != manifest.session_request:
            continue
        trail.append(entry)
        if entry.event is LedgerEvent.STOPPED and entry.recording == manifest.id:
            break
    return tuple(trail)


def _manifest(room: RoomState, gate: Gate) -> Manifest:
    consenting = {pid for pid, a in gate.answers if a is True}
    assert gate.recording is not None and gate.started_at is not None
    return Manifest(
        id=gate.recording,
        room=room.id,
        session_request=gate.request or "",
        room_opened_at=room.created_at,
        status=ManifestStatus.RECORDING,
        participants=tuple(
            ParticipantInfo(id=p.id, role=str(p.role), name=p.display_name)
            for p in room.admitted
            if p.id in consenting
        ),
        started_at=gate.started_at,
        stopped_at=None,
        stop_reason=None,
        files=(),
        ledger=(),
    )
