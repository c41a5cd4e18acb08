"""The recordings this node is writing: their legs, recorders, manifests and ledger entries.

RoomService decides when the gate opens and closes (in the room's state); this does the
I/O that follows. A recording's legs live on the node that holds each participant's socket.
aiortc and PyAV are imported on first use, so a node that never records never loads them.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from media.ice import IceServer, rtc_configuration
from media.turn import TurnConfig, ice_servers_for
from recordings.gate import Gate
from recordings.ledger import ConsentLedger, LedgerEntry
from recordings.manifest import Manifest, ParticipantInfo, describe_file
from recordings.storage import RecordingStorage
from signaling.errors import RecordingNotActive
from signaling.model import RoomState

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


class RecordingService:
    def __init__(
        self,
        storage: RecordingStorage,
        ledger: ConsentLedger,
        *,
        ice_servers: Sequence[IceServer] = (),
        turn: TurnConfig | None = None,
        node_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.ledger = ledger
        self._ice = tuple(ice_servers)
        # This node's own aiortc peer may use the relay too, as TURN user `node-<node id>`.
        self._turn = turn
        self._turn_user = f"node-{node_id}"
        self.clock = clock
        self._active: dict[str, ActiveRecording] = {}
        self._finishing: set[asyncio.Task[None]] = set()
        self._ended: deque[str] = deque(maxlen=ENDED_KEPT)  # recordings stopped on this node

    def record(self, event: str, **fields: str | bool | float | None) -> LedgerEntry:
        """Append to the consent ledger."""
        return self.ledger.append(event, at=self.clock(), **fields)  # type: ignore[arg-type]

    def ice_servers(self) -> tuple[IceServer, ...]:
        """For this node's own peer connections: the configured list, with fresh TURN."""
        return ice_servers_for(self._turn_user, self._ice, self._turn, now=self.clock())

    def active(self, recording_id: str) -> ActiveRecording | None:
        return self._active.get(recording_id)

    @property
    def load(self) -> RecordingLoad:
        active = self._active.values()
        return RecordingLoad(len(active), sum(len(a.legs) for a in active))

    @property
    def rooms_recording(self) -> set[str]:
        return {a.room for a in self._active.values()}

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
        self.storage.folder(gate.recording)
        active = ActiveRecording(
            id=gate.recording,
            room=room.id,
            request=gate.request or "",
            started_at=gate.started_at,
            zero=loop_now - (self.clock() - gate.started_at),
            parts=self.storage.parts_folder(gate.recording),
        )
        self._active[active.id] = active
        self.storage.write_manifest(_manifest(room, gate))
        log.info("recording started", extra={"room": room.id, "recording": active.id})
        return active

    # ---- legs ----

    async def offer(self, room: RoomState, participant_id: str, recording_id: str, sdp: str) -> str:
        """A browser's recording leg: accept it and return the answer's SDP."""
        from media.recording_leg import RecordingLeg, check_offer
        from recordings.recorder import ParticipantRecorder

        gate = room.recording
        if recording_id != gate.recording or gate.answer_of(participant_id) is not True:
            raise RecordingNotActive()
        check_offer(sdp)
        active = self._active.get(recording_id) or self.begin(room)
        ids = {"room": room.id, "participant": participant_id, "recording": recording_id}
        old = active.legs.pop(participant_id, None)
        if old is not None:  # the page reconnected and opened a new leg: it replaces the old
            old.stop_writing()
            await _close_leg(old, ids)
        recorder = active.recorders.get(participant_id)
        leg_holder: list[RecordingLeg] = []

        def keyframe(ssrc: int) -> None:
            if leg_holder:
                leg_holder[0].request_keyframe(ssrc)

        if recorder is None:
            recorder = ParticipantRecorder(
                active.parts, participant_id, active.zero, request_keyframe=keyframe
            )
            active.recorders[participant_id] = recorder
        else:
            recorder.new_leg(request_keyframe=keyframe)

        def lost() -> None:
            log.warning("recording leg lost", extra=ids)

        leg = RecordingLeg(
            rtc_configuration(self.ice_servers()), recorder.write, on_lost=lost, ids=ids
        )
        leg_holder.append(leg)
        if self._active.get(recording_id) is not active:
            raise RecordingNotActive()
        active.legs[participant_id] = leg
        try:
            answer = await leg.accept(sdp)
        except Exception:
            active.legs.pop(participant_id, None)
            await _close_leg(leg, ids)
            raise
        if self._active.get(recording_id) is not active:
            # The gate closed while we answered.
            await _close_leg(leg, ids)
            raise RecordingNotActive()
        log.info("recording leg accepted", extra=ids)
        return answer

    # ---- stop ----

    def cut(self, recording_id: str, *, reason: str, stopped_at: float) -> None:
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
            extra={"room": active.room, "recording": active.id, "reason": reason},
        )
        task = asyncio.create_task(self._finish(active, reason, stopped_at, "complete"))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(
        self, active: ActiveRecording, reason: str, stopped_at: float, status: str
    ) -> None:
        ids = {"room": active.room, "recording": active.id}
        try:
            await asyncio.gather(*(_close_leg(leg, ids) for leg in active.legs.values()))
            manifest = self.storage.read_manifest(active.id)
            await asyncio.to_thread(self._write_files, manifest, reason, stopped_at, status)
        except Exception:
            log.exception("finishing a recording failed", extra=ids)

    def _write_files(self, manifest: Manifest, reason: str, stopped_at: float, status: str) -> None:
        """Merge each participant's parts into their file; then the final manifest."""
        from recordings.recorder import merge, part_files

        folder = self.storage.folder(manifest.id)
        parts = self.storage.parts_folder(manifest.id)
        files = []
        for p in manifest.participants:
            found = part_files(parts, p.id)
            out = folder / f"{p.id}.webm"
            if found and merge(found, out):
                files.append(describe_file(out, p.id))
        entries = _consent_trail(self.ledger.entries(), manifest)
        self.storage.write_manifest(
            replace(
                manifest,
                status=status,
                stopped_at=stopped_at,
                stop_reason=reason,
                files=tuple(files),
                ledger=entries,
            )
        )
        shutil.rmtree(parts, ignore_errors=True)

    async def recover(self) -> list[str]:
        """At start: recordings a killed node left open are merged and closed."""
        recovered = []
        for manifest in self.storage.unfinished():
            if manifest.id in self._active:
                continue
            entry = self.record(
                "stopped",
                room=manifest.room,
                request=manifest.session_request,
                recording=manifest.id,
                reason="interrupted",
            )
            await asyncio.to_thread(
                self._write_files, manifest, "interrupted", entry.at, "interrupted"
            )
            log.warning(
                "recording was interrupted; its files were closed",
                extra={"room": manifest.room, "recording": manifest.id},
            )
            recovered.append(manifest.id)
        return recovered

    async def close(self) -> None:
        """Wait for recordings being finished (RoomService stops open ones first)."""
        for recording_id in list(self._active):
            self.cut(recording_id, reason="server_stopped", stopped_at=self.clock())
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)


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
        if entry.event == "stopped" and entry.recording == manifest.id:
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
        status="recording",
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
