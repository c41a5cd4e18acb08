"""Recording control: what this node does about recordings, driven by committed room events.

The room service moves the consent gate in the room's state; the store commits the move
with its events, and the dispatcher hands them here (`committed`). From them this writes
the consent ledger, begins a recording, and has every node cut its legs of one that stopped.
It also reconciles what this node writes with the rooms' gates when its bus subscription was
made again (a `recording_cut` may have been missed), and recovers recordings a killed node
left open. The I/O of one recording (legs, recorders, files, manifest) is in writer.py.

The room service knows this only through the Protocol it defines
(signaling/recording_port.py), which this satisfies without importing it: recordings/
imports nothing of signaling/ but its shared core.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from media.ice import IceServer
from media.turn import TurnConfig
from recordings.ledger import ConsentLedger, LedgerEntry, LedgerEvent
from recordings.manifest import Manifest, ManifestStatus
from recordings.storage import RecordingStorage
from recordings.writer import RecordingLoad, RecordingWriter
from signaling.core.errors import ServiceUnavailable
from signaling.core.events import (
    Committed,
    ConsentAnswered,
    RecordingRequested,
    RecordingStarted,
    RecordingStopped,
)
from signaling.core.gate import Reason, Status
from signaling.core.model import RoomState

log = logging.getLogger("sessionroom.recordings")

RECOVER_QUIET_SECONDS = 10.0  # parts touched more recently than this may still be written
# The node message that has every node stop writing a recording (sent through `to_nodes`).
RECORDING_CUT = "recording_cut"

SendToNodes = Callable[[Mapping[str, Any]], Awaitable[None]]
ReadRoom = Callable[[str], Awaitable[RoomState | None]]


class RecordingControl:
    def __init__(
        self,
        storage: RecordingStorage,
        ledger: ConsentLedger,
        *,
        to_nodes: SendToNodes,
        read_room: ReadRoom,
        resubscribed_kind: str,
        ice_servers: Sequence[IceServer] = (),
        turn: TurnConfig | None = None,
        node_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`to_nodes` sends a message to every node, this one first and at once (the bus's
        `to_nodes`); `read_room` reads a room's committed state (the store's `get`).
        `resubscribed_kind` is the `kind` of the node message the bus gives this node's
        handlers when it may have missed some (signaling.bus.RESUBSCRIBED): it is passed in,
        not imported, because the bus belongs to the signalling service layer."""
        self.storage = storage
        self.ledger = ledger
        self.clock = clock
        self._to_nodes = to_nodes
        self._read_room = read_room
        self._resubscribed_kind = resubscribed_kind
        self._writer = RecordingWriter(
            storage, ledger, ice_servers=ice_servers, turn=turn, node_id=node_id, clock=clock
        )
        self._checks: set[asyncio.Task[None]] = set()

    # ---- what the room service sees ----

    @property
    def available(self) -> bool:
        return True

    @property
    def rooms_recording(self) -> frozenset[str]:
        return frozenset(self._writer.writing.values())

    @property
    def load(self) -> RecordingLoad:
        return self._writer.load

    @property
    def writing(self) -> dict[str, str]:
        """The recordings this node is writing: recording id -> room id."""
        return self._writer.writing

    async def offer(self, room: RoomState, participant: str, recording: str, sdp: str) -> str:
        """A browser's recording leg: the answer's SDP."""
        return await self._writer.offer(room, participant, recording, sdp)

    async def committed(self, batch: Committed) -> None:
        """Committed room events, in order: the ledger's entries, and the recording's start
        or cut, as each gate move implies."""
        for event in batch.events:
            if isinstance(event, RecordingRequested):
                self._append_to_ledger(
                    LedgerEvent.REQUESTED,
                    room=event.room,
                    request=event.request,
                    participant=event.by,
                )
            elif isinstance(event, ConsentAnswered):
                self._append_to_ledger(
                    LedgerEvent.ANSWERED,
                    room=event.room,
                    request=event.request,
                    participant=event.participant,
                    granted=event.granted,
                )
            elif isinstance(event, RecordingStopped):
                if event.recording is not None:
                    # Every node stops its legs of this recording: this one at once.
                    await self._to_nodes(
                        {
                            "kind": RECORDING_CUT,
                            "recording": event.recording,
                            "reason": str(event.reason),
                            "at": event.at,
                        }
                    )
                self._note_stopped(
                    room=event.room,
                    request=event.request,
                    recording=event.recording,
                    by=event.by,
                    reason=event.reason,
                )
            elif isinstance(event, RecordingStarted):
                self._append_to_ledger(
                    LedgerEvent.STARTED,
                    room=event.room,
                    request=event.request,
                    recording=event.recording,
                )
                if batch.room.recording.recording == event.recording:
                    self._writer.begin(batch.room)
                else:
                    log.warning(
                        "recording stopped before it began",
                        extra={"room": event.room, "recording": event.recording},
                    )

    def node_message(self, message: Mapping[str, Any]) -> None:
        """From the bus: a recording was cut on some node (this node's legs of it stop too),
        or this node may have missed such word (what it writes is checked in the
        background)."""
        kind = message.get("kind")
        if kind == RECORDING_CUT:
            self._writer.cut(
                str(message["recording"]),
                Reason(str(message["reason"])),
                float(message["at"]),
            )
        elif kind == self._resubscribed_kind:
            task = asyncio.create_task(self._reconcile_in_background())
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

    async def close(self) -> None:
        """Cut what is still written (the room service shuts the open gates first) and wait
        for every recording's files."""
        for task in list(self._checks):
            task.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)
        await self._writer.close()

    # ---- checks against the rooms' gates ----

    async def is_live(self, manifest: Manifest) -> bool:
        """Is this recording still being written somewhere (its room's gate open on it)?"""
        room = await self._read_room(manifest.room)
        return (
            room is not None
            and room.recording.status is Status.RECORDING
            and room.recording.recording == manifest.id
        )

    async def reconcile(self) -> list[str]:
        """Stop writing every recording whose gate has closed (or moved on to another
        recording) without this node hearing of it. Returns the ids cut."""
        cut = []
        for recording_id, room_id in sorted(self._writer.writing.items()):
            try:
                room = await self._read_room(room_id)
            except ServiceUnavailable:
                log.warning("recording check failed", extra={"room": room_id})
                continue
            gate = room.recording if room is not None else None
            if (
                gate is not None
                and gate.status is Status.RECORDING
                and gate.recording == recording_id
            ):
                continue
            reason = gate.reason if gate is not None and gate.reason else Reason.SESSION_ENDED
            at = gate.at if gate is not None and gate.at else self.clock()
            log.info(
                "recording stopped elsewhere",
                extra={"room": room_id, "recording": recording_id, "reason": str(reason)},
            )
            self._writer.cut(recording_id, reason, at)
            cut.append(recording_id)
        return cut

    async def _reconcile_in_background(self) -> None:
        try:
            await self.reconcile()
        except Exception:
            log.exception("recording check failed")

    async def recover(self, *, quiet_seconds: float = RECOVER_QUIET_SECONDS) -> list[str]:
        """Recordings left open by a node that was killed: their parts are merged and the
        recording closed as interrupted. Those still being written somewhere (`is_live`)
        are left alone, as are parts written in the last `quiet_seconds` (another node may
        be finishing them; with one node there is no other, and 0 will do)."""
        from recordings.recorder import part_files

        recovered = []
        now = time.time()  # against the files' modification times
        for manifest in self.storage.unfinished():
            if self._writer.has(manifest.id) or await self.is_live(manifest):
                continue  # this node writes or finishes it, or another node still writes it
            parts = self.storage.parts_folder(manifest.id)
            recent = [
                f
                for p in manifest.participants
                for f in part_files(parts, p.id)
                if now - f.stat().st_mtime < quiet_seconds
            ]
            if recent:
                continue
            if manifest.stopped_at is None:
                self._note_stopped(
                    room=manifest.room,
                    request=manifest.session_request,
                    recording=manifest.id,
                    by=None,
                    reason=Reason.INTERRUPTED,
                )
            await self._writer.finish_files(
                manifest.id, None, Reason.INTERRUPTED, self.clock(), ManifestStatus.INTERRUPTED
            )
            log.warning(
                "recording was interrupted; its files were closed",
                extra={"room": manifest.room, "recording": manifest.id},
            )
            recovered.append(manifest.id)
        return recovered

    # ---- the consent ledger ----

    def _note_stopped(
        self,
        *,
        room: str,
        request: str | None,
        recording: str | None,
        by: str | None,
        reason: Reason,
    ) -> LedgerEntry:
        """The one place a `stopped` entry is written: a request closed (`recording` None
        when nothing was recorded under it) or its recording stopped."""
        return self._append_to_ledger(
            LedgerEvent.STOPPED,
            room=room,
            request=request,
            recording=recording,
            participant=by,
            reason=reason,
        )

    def _append_to_ledger(
        self,
        event: LedgerEvent,
        *,
        room: str,
        request: str | None,
        recording: str | None = None,
        participant: str | None = None,
        granted: bool | None = None,
        reason: Reason | None = None,
    ) -> LedgerEntry:
        return self.ledger.append(
            event,
            at=self.clock(),
            room=room,
            request=request,
            recording=recording,
            participant=participant,
            granted=granted,
            reason=str(reason) if reason is not None else None,
        )
