"""RoomService: the signalling service as the WebSocket, the REST API and the CLI see it.

It puts the parts together and passes each call to the one that does it: links and rooms
(links.py), who is in a room (admission.py), sockets that drop (presence.py), what
participants send each other (relay.py), and consent to record (recording_requests.py).
Each change is a pure rule committed with its events (room_changes.py); the dispatcher then
hands the events to recording control, the extra subscribers given (metrics), the wire and
the grace timers, in that order. Recording control is known only through the Protocol in
recording_port.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from media.ice import IceServer
from media.turn import TurnConfig
from signaling.admission import Admission, Joined
from signaling.bus import MessageBus
from signaling.core.gate import Reason
from signaling.core.model import RoomSettings, RoomState
from signaling.dispatch import Dispatcher, Subscriber
from signaling.links import Links, MintedLink, link_url
from signaling.presence import Presence
from signaling.recording_port import NoRecording, RecordingControl
from signaling.recording_requests import RecordingRequests
from signaling.relay import Relay
from signaling.room_changes import RoomChanges
from signaling.session import Session
from signaling.store import RoomStore
from signaling.tokens import KeyRing, LinkClaims
from signaling.wire import CLOSE_NORMAL, CLOSE_REPLACED, Wire

__all__ = [
    "CLOSE_NORMAL",
    "CLOSE_REPLACED",
    "Joined",
    "MintedLink",
    "RoomService",
    "Session",
    "link_url",
]


class RoomService:
    def __init__(
        self,
        store: RoomStore,
        bus: MessageBus,
        keys: KeyRing,
        *,
        grace_seconds: float,
        ice_servers: Sequence[IceServer] = (),
        turn: TurnConfig | None = None,
        public_url: str = "",
        recordings: RecordingControl | None = None,
        recordings_where: str = "",
        clock: Callable[[], float] = time.time,
        subscribers: Sequence[Subscriber] = (),
    ) -> None:
        self.store = store
        self.bus = bus
        self.keys = keys
        self.clock = clock
        self.recordings: RecordingControl = recordings or NoRecording()
        self.dispatcher = Dispatcher()
        changes = RoomChanges(store, self.dispatcher)
        self.wire = Wire(bus, recordings_where=recordings_where)
        self._links = Links(changes, keys, public_url=public_url, clock=clock)
        self.link = self._links.link  # minting a link (REST, CLI): Links.link
        self._admission = Admission(
            changes, self.wire, node_id=bus.node_id, ice_servers=ice_servers, turn=turn, clock=clock
        )
        self._presence = Presence(changes, self.wire, grace_seconds=grace_seconds, clock=clock)
        self._relay = Relay(store, self.wire, self.recordings, clock=clock)
        self._requests = RecordingRequests(changes, self.recordings, clock=clock)
        # Recording control first: a recording begins before the room hears it has.
        for subscriber in (self.recordings, *subscribers, self.wire, self._presence):
            self.dispatcher.subscribe(subscriber)

    # ---- links and rooms (REST, CLI) ----

    @staticmethod
    def new_room_id() -> str:
        return Links.new_room_id()

    async def create_room(
        self, settings: RoomSettings, *, room_id: str | None = None, expires_at: float | None = None
    ) -> RoomState:
        return await self._links.create_room(settings, room_id=room_id, expires_at=expires_at)

    async def room_for_link(self, room_id: str) -> RoomState:
        return await self._links.room_for_link(room_id)

    async def keep_room_until(self, room_id: str, expires_at: float) -> None:
        await self._links.keep_room_until(room_id, expires_at)

    async def end_room(self, room_id: str, by: str | None = None) -> None:
        await self._admission.end_room(room_id, by)

    # ---- a participant's socket ----

    async def join(
        self, claims: LinkClaims, resume: str | None, *, new_device: bool = False
    ) -> Joined:
        return await self._admission.join(claims, resume, new_device=new_device)

    async def admit(self, s: Session, target: str) -> None:
        await self._admission.admit(s, target)

    async def deny(self, s: Session, target: str, message: str) -> None:
        await self._admission.deny(s, target, message)

    async def allow(self, s: Session, denied_id: str) -> None:
        await self._admission.allow(s, denied_id)

    async def lobby_notice(self, s: Session, text: str) -> None:
        await self._admission.lobby_notice(s, text)

    async def leave(self, s: Session) -> None:
        await self._admission.leave(s)

    async def end(self, s: Session) -> None:
        await self._admission.end(s)

    async def signal(self, s: Session, to: str, data: Mapping[str, Any]) -> None:
        await self._relay.signal(s, to, data)

    async def chat(self, s: Session, text: str, chat_id: str = "") -> None:
        await self._relay.chat(s, text, chat_id)

    async def recording_offer(self, s: Session, recording_id: str, sdp: str) -> None:
        await self._relay.recording_offer(s, recording_id, sdp)

    async def request_recording(self, s: Session) -> None:
        await self._requests.request(s)

    async def consent(self, s: Session, request_id: str, granted: bool) -> None:
        await self._requests.consent(s, request_id, granted)

    async def stop_recording(self, s: Session) -> None:
        await self._requests.stop(s)

    async def disconnected(self, s: Session) -> None:
        await self._presence.disconnected(s)

    async def node_lost(self, room_id: str, node: str) -> None:
        await self._presence.node_lost(room_id, node)

    async def close(self) -> None:
        """Grace timers stop; the recordings this node writes stop (their rooms are told)
        and their files are finished."""
        await self._presence.close()
        await self._requests.shut_all(Reason.SERVER_STOPPED)
        await self.recordings.close()
