"""RoomService: the I/O around the pure room rules.

It applies each rule through the store (atomically), then tells the participants concerned
through the bus. Every participant is addressed by id; where its socket is, is the bus's
business. Logs name rooms and participants by id only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from media.ice import IceServer, ice_servers_json
from media.turn import TurnConfig, ice_servers_for
from recordings import gate as recording_gate
from recordings.gate import GateChange, Reason, Status
from recordings.storage import new_recording_id
from signaling import room_rules
from signaling.bus import RESUBSCRIBED, Envelope, MessageBus
from signaling.errors import (
    Conflict,
    Denied,
    Forbidden,
    InvalidToken,
    LinkInUse,
    NotAllowed,
    NotFound,
    RecordingCodecUnsupported,
    RecordingDisabled,
    RecordingNotActive,
    RoomEnded,
    ServiceUnavailable,
    StateLost,
)
from signaling.keyed_lock import KeyedLock
from signaling.model import (
    Denial,
    Participant,
    ParticipantState,
    Permission,
    RecordingMode,
    Role,
    RoomSettings,
    RoomState,
)
from signaling.room_rules import Change
from signaling.store import RoomStore
from signaling.tokens import (
    KeyRing,
    LinkClaims,
    new_resume_secret,
    resume_matches,
    resume_token,
    split_resume_token,
)

if TYPE_CHECKING:
    from recordings.manifest import Manifest
    from recordings.service import RecordingService

log = logging.getLogger("sessionroom.rooms")

Gated = tuple[RoomState, GateChange]

CLOSE_NORMAL = 1000
CLOSE_REPLACED = 4001  # another socket of the same participant took over


@dataclass(frozen=True)
class Session:
    """What an authenticated socket is: whose, in which room, which connection."""

    room_id: str
    participant_id: str
    connection: int
    claims: LinkClaims

    @property
    def ids(self) -> dict[str, str]:
        """For log lines: ids only."""
        return {"room": self.room_id, "participant": self.participant_id}


@dataclass(frozen=True)
class MintedLink:
    url: str
    expires: int  # unix time


@dataclass(frozen=True)
class Joined:
    session: Session
    message: dict[str, Any]


def _lobby(room: RoomState) -> dict[str, Any]:
    return {
        "type": "lobby",
        "waiting": [p.waiting_entry() for p in room.waiting],
        # Those turned away, whose links stay refused until a therapist sends `allow`.
        "denied": [d.lobby_entry() for d in room.denied if d.link],
    }


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
        recordings: RecordingService | None = None,
        recordings_where: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.bus = bus
        self.keys = keys
        self._grace = grace_seconds
        self._ice = tuple(ice_servers)
        self._turn = turn  # each `joined` carries that participant's own TURN credentials
        self._public_url = public_url
        self.clock = clock
        self._timers: set[asyncio.Task[None]] = set()
        # One operation per room at a time on this node, from its store transition through
        # its messages, so that everyone sees a room's events in the order they happened.
        self._serial = KeyedLock()
        self._link_alerts: dict[str, float] = {}  # link id -> when therapists were told
        self.recordings = recordings
        self._recordings_where = recordings_where

    # ---- links and rooms (REST, CLI) ----

    def link(
        self,
        room_id: str,
        role: Role,
        name: str,
        *,
        valid_for: float,
        not_before: float | None = None,
        settings: RoomSettings | None = None,
        identity: str | None = None,
        permissions: frozenset[Permission] | None = None,
    ) -> MintedLink:
        start = int(not_before if not_before is not None else self.clock())
        expires = start + int(valid_for)
        token = self.keys.mint(
            room=room_id,
            role=role,
            name=name,
            not_before=start,
            expires=expires,
            identity=identity,
            room_settings=settings,
            permissions=permissions,
        )
        return MintedLink(url=link_url(self._public_url, token), expires=expires)

    @staticmethod
    def new_room_id() -> str:
        return secrets.token_urlsafe(12)

    async def create_room(
        self, settings: RoomSettings, *, room_id: str | None = None, expires_at: float | None = None
    ) -> RoomState:
        """A room made by the practice (API, demo); `expires_at` is when its last link
        expires, after which it is forgotten if nobody is in it."""
        room_id = room_id or self.new_room_id()
        now = self.clock()

        def create(current: RoomState | None) -> tuple[RoomState | None, RoomState]:
            if current is not None:
                raise Conflict("A room with that id exists.")
            room = RoomState(
                id=room_id, settings=settings, created_at=now, origin="api", expires_at=expires_at
            )
            return room, room

        room = await self.store.update(room_id, create)
        log.info("room created", extra={"room": room_id})
        return room

    async def room_for_link(self, room_id: str) -> RoomState:
        """The open room a new API link is for; NotFound if it is gone or ended."""
        room = await self.store.get(room_id)
        if room is None or room.ended:
            raise NotFound("No such room.")
        return room

    async def keep_room_until(self, room_id: str, expires_at: float) -> None:
        """A new link for the room expires at `expires_at`: keep the room until then."""

        def extend(current: RoomState | None) -> tuple[RoomState | None, None]:
            if current is None or current.ended:
                raise NotFound("No such room.")
            if current.expires_at is None or current.expires_at >= expires_at:
                return None, None
            return replace(current, expires_at=expires_at), None

        await self.store.update(room_id, extend)

    async def end_room(self, room_id: str, by: str | None = None) -> None:
        async with self._serial.hold(room_id):
            now = self.clock()

            Ended = tuple[tuple[Participant, ...], RoomState, GateChange | None]

            def end(current: RoomState | None) -> tuple[RoomState | None, Ended]:
                if current is None:
                    raise NotFound("No such room.")
                ended, everyone = room_rules.end(current, now)
                shut = recording_gate.shut(ended.recording, reason=Reason.SESSION_ENDED, now=now)
                if shut is not None:
                    ended = replace(ended, recording=shut.gate)
                return ended, (everyone, ended, shut)

            everyone, ended, shut = await self.store.update(room_id, end)
            if shut is not None:
                await self._after_gate(ended, shut, tell=())
            log.info("room ended", extra={"room": room_id, "participant": by})
            message = {"type": "ended", "by": by}
            for p in everyone:
                await self._send(p.id, message, close_code=CLOSE_NORMAL, close_reason="ended")
                if not p.connected:
                    # Nobody resumes into an ended room: drop what was kept for them.
                    await self.bus.discard(p.id)

    # ---- joining ----

    async def join(
        self, claims: LinkClaims, resume: str | None, *, new_device: bool = False
    ) -> Joined:
        async with self._serial.hold(claims.room):
            now = self.clock()
            node = self.bus.node_id
            secret, secret_hash = new_resume_secret()
            newcomer = Participant(
                id=secrets.token_urlsafe(9),
                role=claims.role,
                identity=claims.identity,
                display_name=claims.name,
                state=ParticipantState.WAITING,
                link_id=claims.link_id,
                resume_hash=secret_hash,
                joined_at=now,
                node=node,
                media=claims.may(Permission.SIGNAL),
            )
            resume_id, resume_secret = split_resume_token(resume) if resume else ("", "")

            def apply(current: RoomState | None) -> tuple[RoomState | None, Change]:
                room = room_rules.open_room(current, claims.room, claims.room_settings, now, "link")
                held = room.participant(resume_id) if resume_id else None
                denial = room.denial(participant=resume_id) if resume_id else None
                if denial is not None:
                    raise self._refusal(denial)
                if held is not None and held.link_id != claims.link_id:
                    raise InvalidToken("The resume token is not valid.")
                if held is not None and resume_matches(resume_secret, held.resume_hash):
                    # The place back, with a new secret: the one just used stops working.
                    change = room_rules.reconnect(room, held.id, node, secret_hash)
                else:
                    # No secret, an old one, or an expired place: a join without the secret,
                    # which never takes a place back (room_rules.join).
                    turned_away = room_rules.link_denial(room, claims.link_id)
                    if turned_away is not None:
                        raise self._refusal(turned_away)
                    change = room_rules.join(room, newcomer, new_device=new_device)
                change = room_rules.follow_gate(change, now)
                return change.room, change

            try:
                change = await self.store.update(claims.room, apply)
            except LinkInUse:
                if claims.role is Role.CLIENT:
                    await self._tell_therapists_link_in_use(claims)
                raise
            me = change.after
            assert me is not None
            resumed = change.before is not None
            if change.replaced is not None:
                # An earlier new device of this link, waiting with its socket gone: this one
                # took its turn (room_rules._new_device), so nothing is kept for it.
                await self.bus.discard(change.replaced.id)
            if resumed:
                await self._after_reconnect(change)
            else:
                await self._after_fresh_join(change)
            if change.gate is not None:
                await self._after_gate(change.room, change.gate)
            elif me.in_room and change.room.recording.awaits(me.id):
                # Back from a dropped socket with a question still open: ask again.
                await self._send(me.id, self._consent_request(change.room))
            log.info(
                "participant joined",
                extra={
                    "room": claims.room,
                    "participant": me.id,
                    "role": str(me.role),
                    "state": str(me.state),
                    "resumed": resumed,
                },
            )
            session = Session(claims.room, me.id, me.connection, claims)
            token = resume_token(me.id, secret)
            return Joined(session, self._joined_message(change.room, me, claims, token, resumed))

    def _joined_message(
        self, room: RoomState, me: Participant, claims: LinkClaims, token: str, resumed: bool
    ) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "type": "joined",
            "participant": {
                **me.public(),
                "permissions": sorted(str(p) for p in claims.permissions),
            },
            "room": {"id": room.id, "settings": room.settings.to_dict()},
            "state": "in_room" if me.in_room else "waiting",
            "ice_servers": ice_servers_json(
                ice_servers_for(me.id, self._ice, self._turn, now=self.clock())
            ),
            "resume": token,
            "resumed": resumed,
        }
        if me.in_room:
            msg["peers"] = [p.public() for p in room.admitted if p.id != me.id]
            msg["recording"] = room.recording.public()
        else:
            msg["waiting_since"] = me.waiting_since
            msg["therapist_present"] = room.therapist_present
            msg["notice"] = room.notice
        if me.role is Role.THERAPIST:
            lobby = _lobby(room)
            msg["lobby"] = lobby["waiting"]
            msg["denied"] = lobby["denied"]
        return msg

    async def _after_fresh_join(self, change: Change) -> None:
        room, me = change.room, change.after
        assert me is not None
        if me.state is ParticipantState.WAITING:
            await self._send_lobby(room)
            return
        await self._send_many(
            (p.id for p in room.admitted if p.id != me.id),
            {"type": "peer_joined", "participant": me.public()},
        )
        if me.role is Role.THERAPIST and len(room.therapists) == 1:
            await self._send_presence(room)

    async def _after_reconnect(self, change: Change) -> None:
        before, me, room = change.before, change.after, change.room
        assert before is not None and me is not None
        if before.connected:
            # The old socket may still look alive (a network change): close it.
            await self._close_replaced(before, "This session continued on another connection.")
        if me.state is ParticipantState.WAITING:
            await self._send_lobby(room)
        elif not before.connected:
            await self._send_many(
                (p.id for p in room.admitted if p.id != me.id),
                {"type": "peer_resumed", "participant": me.id},
            )

    async def _tell_therapists_link_in_use(self, claims: LinkClaims) -> None:
        # Someone may try again and again ("Join here instead" is one more try): tell the
        # therapists once per link and minute, not every try.
        now = self.clock()
        self._link_alerts = {k: t for k, t in self._link_alerts.items() if now - t < 60}
        if claims.link_id in self._link_alerts:
            return
        self._link_alerts[claims.link_id] = now
        room = await self.store.get(claims.room)
        if room is None:
            return
        holder = room.by_link(claims.link_id)
        log.warning(
            "link used on a second device",
            extra={"room": room.id, "participant": holder.id if holder else None},
        )
        await self._send_many(
            (t.id for t in room.therapists),
            {"type": "link_in_use", "participant": holder.id if holder else None},
        )

    # ---- the waiting room ----

    async def admit(self, s: Session, target: str) -> None:
        async with self._serial.hold(s.room_id):
            self._require(s, Permission.ADMIT)
            now = self.clock()
            change = await self._apply(
                s.room_id,
                lambda r: room_rules.follow_gate(
                    room_rules.admit(r, s.participant_id, target), now
                ),
            )
            room, admitted = change.room, change.after
            assert admitted is not None
            log.info(
                "admitted", extra={"room": s.room_id, "participant": target, "by": s.participant_id}
            )
            if change.replaced is not None:
                await self._after_replaced(room, change.replaced)
            await self._send_admitted(room, admitted)
            if change.gate is not None:
                await self._after_gate(room, change.gate)

    async def _close_replaced(self, old: Participant, message: str) -> None:
        """Tell `old`'s socket (that connection only) it was replaced, then close it."""
        await self.bus.publish(
            Envelope(
                to=old.id,
                origin=self.bus.node_id,
                payload={"type": "error", "code": "replaced", "message": message},
                close_code=CLOSE_REPLACED,
                close_reason="replaced",
                connection=old.connection,
            )
        )

    async def _after_replaced(self, room: RoomState, old: Participant) -> None:
        """A new device of the same link was admitted into `old`'s place: the old socket,
        if any, is told and closed, and those in the room see the old one leave."""
        log.info("participant replaced", extra={"room": room.id, "participant": old.id})
        if old.connected:
            await self._close_replaced(old, "This session continued on another device.")
        await self._tell_undelivered(room, old.id, await self.bus.discard(old.id))
        if old.in_room:
            await self._send_many(
                (p.id for p in room.admitted),
                {"type": "peer_left", "participant": old.id, "reason": "replaced"},
            )

    async def _send_admitted(self, room: RoomState, admitted: Participant) -> None:
        peers = [p for p in room.admitted if p.id != admitted.id]
        # Those in the room hear of the newcomer first: its first signals follow its
        # `admitted`, and must not reach a peer who does not yet know it joined after them
        # (that peer makes the offer). Over Redis, a node's sends arrive in order.
        await self._send_many(
            (p.id for p in peers), {"type": "peer_joined", "participant": admitted.public()}
        )
        await self._send(admitted.id, {"type": "admitted", "peers": [p.public() for p in peers]})
        await self._send_lobby(room)

    async def deny(self, s: Session, target: str, message: str) -> None:
        async with self._serial.hold(s.room_id):
            self._require(s, Permission.DENY)
            now = self.clock()
            change = await self._apply(
                s.room_id, lambda r: room_rules.deny(r, s.participant_id, target, message, now)
            )
            log.info("denied", extra={**s.ids, "participant": target, "by": s.participant_id})
            await self._send(
                target,
                {"type": "denied", "message": message},
                close_code=CLOSE_NORMAL,
                close_reason="denied",
            )
            await self.bus.discard(target)
            if change.released is not None and change.released.in_room:
                await self._send_admitted(change.room, change.released)
            else:
                await self._send_lobby(change.room)

    async def allow(self, s: Session, denied_id: str) -> None:
        """A therapist lets a turned-away link join again (into the waiting room)."""
        async with self._serial.hold(s.room_id):
            self._require(s, Permission.ADMIT)

            def apply(current: RoomState | None) -> tuple[RoomState | None, RoomState]:
                room = room_rules.allow(
                    room_rules.require_open(current), s.participant_id, denied_id
                )
                return room, room

            room = await self.store.update(s.room_id, apply)
            log.info(
                "allowed again", extra={**s.ids, "participant": denied_id, "by": s.participant_id}
            )
            await self._send_lobby(room)

    async def lobby_notice(self, s: Session, text: str) -> None:
        async with self._serial.hold(s.room_id):
            self._require(s, Permission.LOBBY_NOTICE)

            def apply(current: RoomState | None) -> tuple[RoomState | None, RoomState]:
                room = room_rules.set_notice(
                    room_rules.require_open(current), s.participant_id, text
                )
                return room, room

            room = await self.store.update(s.room_id, apply)
            await self._send_many(
                (p.id for p in room.waiting), {"type": "lobby_notice", "text": text}
            )

    # ---- in the room ----

    async def signal(self, s: Session, to: str, data: Mapping[str, Any]) -> None:
        self._require(s, Permission.SIGNAL)
        room = await self._admitted_room(s)
        target = room.participant(to)
        if (
            target is None
            or target.state is not ParticipantState.ADMITTED
            or to == s.participant_id
        ):
            raise NotFound("No such participant in this room.")
        await self._send(to, {"type": "signal", "from": s.participant_id, "data": data})

    async def chat(self, s: Session, text: str, chat_id: str = "") -> None:
        self._require(s, Permission.CHAT)
        room = await self._admitted_room(s)
        message = {
            "type": "chat",
            "from": s.participant_id,
            "text": text,
            "at": self.clock(),
            # The sender's own id for this message (a new one if it gave none): a recipient
            # who never gets it is named back to the sender with it (`chat_undelivered`).
            "id": chat_id or "c-" + secrets.token_urlsafe(6),
        }
        await self._send_many((p.id for p in room.admitted if p.id != s.participant_id), message)

    async def _tell_undelivered(
        self, room: RoomState, recipient: str, kept: Iterable[Envelope]
    ) -> None:
        """A participant left (or its grace period ran out) with chat still kept for it:
        each sender still here is told, once per message, that it never arrived."""
        for envelope in kept:
            payload = envelope.payload or {}
            sender = payload.get("from")
            if payload.get("type") != "chat" or not isinstance(sender, str):
                continue
            if room.participant(sender) is None:
                continue  # the sender has gone too: nobody to tell
            log.info("chat not delivered", extra={"room": room.id, "participant": recipient})
            await self._send(
                sender, {"type": "chat_undelivered", "id": payload.get("id"), "to": recipient}
            )

    async def leave(self, s: Session) -> None:
        async with self._serial.hold(s.room_id):
            now = self.clock()
            change = await self._apply_optional(
                s.room_id,
                lambda r: _follow_gate(room_rules.leave(r, s.participant_id), now),
            )
            if change is not None:
                await self._after_departure(change, "left")

    async def end(self, s: Session) -> None:
        self._require(s, Permission.END)
        room = await self.store.get(s.room_id)
        me = room.participant(s.participant_id) if room else None
        if me is None or not me.in_room:
            raise NotAllowed("Only a therapist in the room can end the session.")
        await self.end_room(s.room_id, by=s.participant_id)

    # ---- recording ----

    async def request_recording(self, s: Session) -> None:
        self._require(s, Permission.RECORD)
        async with self._serial.hold(s.room_id):
            now = self.clock()
            request_id = "q-" + secrets.token_urlsafe(6)
            recording_id = new_recording_id(now)

            def step(room: RoomState) -> GateChange:
                if room.settings.recording is not RecordingMode.CONSENT or self.recordings is None:
                    raise RecordingDisabled()
                room_rules.require_therapist(room, s.participant_id)
                return recording_gate.request(
                    room.recording,
                    by=s.participant_id,
                    present=tuple(p.id for p in room.admitted),
                    request_id=request_id,
                    now=now,
                    new_recording=recording_id,
                )

            room, change = await self._move_gate(s.room_id, step)
            assert self.recordings is not None
            self.recordings.record(
                "requested", room=room.id, request=request_id, participant=s.participant_id
            )
            log.info("recording requested", extra={**s.ids, "request": request_id})
            await self._after_gate(room, change)

    async def consent(self, s: Session, request_id: str, granted: bool) -> None:
        self._require(s, Permission.CONSENT)
        async with self._serial.hold(s.room_id):
            now = self.clock()
            recording_id = new_recording_id(now)

            def step(room: RoomState) -> GateChange:
                me = room.participant(s.participant_id)
                if me is None or not me.in_room:
                    raise NotAllowed("You are not in the room.")
                return recording_gate.answer(
                    room.recording,
                    participant=s.participant_id,
                    request_id=request_id,
                    granted=granted,
                    now=now,
                    new_recording=recording_id,
                )

            room, change = await self._move_gate(s.room_id, step)
            if self.recordings is not None:
                self.recordings.record(
                    "answered",
                    room=room.id,
                    request=request_id,
                    participant=s.participant_id,
                    granted=granted,
                )
            log.info("recording consent", extra={**s.ids, "granted": granted})
            await self._after_gate(room, change)

    async def stop_recording(self, s: Session) -> None:
        self._require(s, Permission.RECORD)
        async with self._serial.hold(s.room_id):
            now = self.clock()

            def step(room: RoomState) -> GateChange:
                room_rules.require_therapist(room, s.participant_id)
                return recording_gate.stop(room.recording, by=s.participant_id, now=now)

            await self._after_gate(*await self._move_gate(s.room_id, step))

    async def recording_offer(self, s: Session, recording_id: str, sdp: str) -> None:
        """A browser's recording leg: answered with `rec_answer`, or refused."""
        room = await self._admitted_room(s)
        if self.recordings is None or room.recording.status is not Status.RECORDING:
            raise RecordingNotActive()
        try:
            answer = await self.recordings.offer(room, s.participant_id, recording_id, sdp)
        except RecordingCodecUnsupported as e:
            # Recording goes on for the others; the therapist must know whose part is missing.
            await self._send_many(
                (t.id for t in room.therapists if t.id != s.participant_id),
                {"type": "recording_issue", "participant": s.participant_id, "code": e.code},
            )
            raise
        await self._send(
            s.participant_id, {"type": "rec_answer", "recording": recording_id, "sdp": answer}
        )

    def node_message(self, message: Mapping[str, Any]) -> None:
        """From the bus: this node may have missed a `recording_cut` (see RESUBSCRIBED)."""
        if message.get("kind") == RESUBSCRIBED:
            task = asyncio.create_task(self._reconcile_in_background())
            self._timers.add(task)
            task.add_done_callback(self._timers.discard)

    async def _reconcile_in_background(self) -> None:
        try:
            await self.reconcile_recordings()
        except Exception:
            log.exception("recording check failed")

    async def reconcile_recordings(self) -> list[str]:
        """Stop writing every recording whose gate has closed (or moved on to another
        recording) without this node hearing of it. Returns the ids cut."""
        recordings = self.recordings
        if recordings is None:
            return []
        cut = []
        for recording_id, room_id in sorted(recordings.writing.items()):
            try:
                room = await self.store.get(room_id)
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
            recordings.cut(recording_id, reason=str(reason), stopped_at=at)
            cut.append(recording_id)
        return cut

    async def recording_is_live(self, manifest: Manifest) -> bool:
        """Is this recording still being written somewhere (its room's gate open on it)?"""
        room = await self.store.get(manifest.room)
        return (
            room is not None
            and room.recording.status is Status.RECORDING
            and room.recording.recording == manifest.id
        )

    async def _move_gate(self, room_id: str, step: Callable[[RoomState], GateChange]) -> Gated:
        """Apply a gate transition to an open room, atomically."""

        def apply(current: RoomState | None) -> tuple[RoomState | None, Gated]:
            room = room_rules.require_open(current)
            change = step(room)
            room = replace(room, recording=change.gate)
            return room, (room, change)

        return await self.store.update(room_id, apply)

    async def _shut_recording(self, room_id: str, reason: Reason) -> None:
        async with self._serial.hold(room_id):
            now = self.clock()

            def apply(current: RoomState | None) -> tuple[RoomState | None, Gated | None]:
                if current is None:
                    return None, None
                change = recording_gate.shut(current.recording, reason=reason, now=now)
                if change is None:
                    return None, None
                room = replace(current, recording=change.gate)
                return room, (room, change)

            gated = await self.store.update(room_id, apply)
            if gated is not None:
                await self._after_gate(*gated)

    async def _after_gate(
        self, room: RoomState, change: GateChange, tell: Iterable[str] | None = None
    ) -> None:
        """The I/O that follows a gate change: the ledger, the recorder, and messages."""
        gate = change.gate
        recordings = self.recordings
        if recordings is not None:
            if change.stopped is not None or gate.status is Status.STOPPED:
                reason = str(change.stop_reason or gate.reason)
                if change.stopped is not None:
                    # Every node stops its legs of this recording: this one at once.
                    await self.bus.to_nodes(
                        {
                            "kind": "recording_cut",
                            "recording": change.stopped,
                            "reason": reason,
                            "at": gate.at or self.clock(),
                        }
                    )
                recordings.record(
                    "stopped",
                    room=room.id,
                    request=gate.request,
                    recording=change.stopped,
                    participant=gate.by,
                    reason=reason,
                )
            if change.started is not None:
                recordings.record(
                    "started", room=room.id, request=gate.request, recording=change.started
                )
                recordings.begin(room)
        log.info(
            "recording state",
            extra={"room": room.id, "state": str(gate.status), "recording": gate.recording},
        )
        audience = list(tell if tell is not None else (p.id for p in room.admitted))
        await self._send_many(audience, {"type": "recording_state", **gate.public()})
        if change.ask:
            ask = self._consent_request(room)
            await self._send_many((p for p in change.ask if p in audience), ask)

    def _consent_request(self, room: RoomState) -> dict[str, Any]:
        gate = room.recording
        asker = room.participant(gate.requested_by or "")
        return {
            "type": "consent_request",
            "request": gate.request,
            "by": {"id": gate.requested_by, "name": asker.display_name if asker else ""},
            "records": ["audio", "video"],
            "where": self._recordings_where,
        }

    # ---- sockets coming and going ----

    async def disconnected(self, s: Session) -> None:
        """The socket closed without `leave`: hold the place for the grace period."""
        await self._disconnect(s.room_id, s.participant_id, s.connection)

    async def node_lost(self, room_id: str, node: str) -> None:
        """Another node died: its sockets in this room are as good as dropped."""
        room = await self.store.get(room_id)
        if room is None:
            return
        for p in room.participants:
            if p.node == node and p.connected:
                await self._disconnect(room_id, p.id, p.connection)

    async def _disconnect(self, room_id: str, participant_id: str, connection: int) -> None:
        ids = {"room": room_id, "participant": participant_id}
        async with self._serial.hold(room_id):
            now = self.clock()
            change = await self._apply_optional(
                room_id, lambda r: room_rules.disconnect(r, participant_id, connection, now)
            )
            if change is None:
                room = await self.store.get(room_id)
                if room is None or room.participant(participant_id) is None:
                    await self.bus.discard(participant_id)
                return
            log.info("participant disconnected", extra=ids)
            if change.before is not None and change.before.in_room:
                await self._send_many(
                    (p.id for p in change.room.admitted if p.id != participant_id),
                    {"type": "peer_reconnecting", "participant": participant_id},
                )
            else:
                await self._send_lobby(change.room)
            task = asyncio.create_task(self._expire_later(room_id, participant_id, connection))
            self._timers.add(task)
            task.add_done_callback(self._timers.discard)

    async def _expire_later(self, room_id: str, participant_id: str, connection: int) -> None:
        await asyncio.sleep(self._grace)
        ids = {"room": room_id, "participant": participant_id}
        try:
            async with self._serial.hold(room_id):
                now = self.clock()
                change = await self._apply_optional(
                    room_id,
                    lambda r: _follow_gate(room_rules.expire(r, participant_id, connection), now),
                )
                if change is not None:
                    log.info("grace period ran out", extra=ids)
                    await self._after_departure(change, "timeout")
        except Exception:
            log.exception("expiry failed", extra=ids)

    async def _after_departure(self, change: Change, reason: str) -> None:
        before, room = change.before, change.room
        assert before is not None
        await self._tell_undelivered(room, before.id, await self.bus.discard(before.id))
        log.info(
            "participant left",
            extra={"room": room.id, "participant": before.id, "reason": reason},
        )
        released = change.released
        if before.state is ParticipantState.WAITING:
            if released is not None and released.in_room:
                await self._send_admitted(room, released)
            else:
                await self._send_lobby(room)
            return
        await self._send_many(
            (p.id for p in room.admitted if released is None or p.id != released.id),
            {"type": "peer_left", "participant": before.id, "reason": reason},
        )
        if released is not None:
            # A new device that waited for this place: in a room without a waiting room it
            # comes in now; otherwise the therapist's lobby shows it as anyone waiting.
            if released.in_room:
                await self._send_admitted(room, released)
            else:
                await self._send_lobby(room)
        if before.role is Role.THERAPIST and not room.therapist_present:
            await self._send_presence(room)
        if change.gate is not None:
            await self._after_gate(room, change.gate)

    async def close(self) -> None:
        for task in list(self._timers):
            task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        if self.recordings is not None:
            for room_id in sorted(self.recordings.rooms_recording):
                await self._shut_recording(room_id, Reason.SERVER_STOPPED)
            await self.recordings.close()

    # ---- helpers ----

    @staticmethod
    def _refusal(denial: Denial) -> Denied:
        """The refusal a turned-away link or participant gets: `denied`, with the
        therapist's words (or the default text). The one place a stored denial text is read."""
        return Denied(denial.message or None)

    @staticmethod
    def _require(s: Session, permission: Permission) -> None:
        if not s.claims.may(permission):
            raise Forbidden()

    async def _admitted_room(self, s: Session) -> RoomState:
        room = await self.store.get(s.room_id)
        if room is None:
            # An open socket's room can only vanish with the store's data (a Redis that kept
            # nothing across a restart): the page reconnects and joins afresh.
            raise StateLost()
        if room.ended:
            raise RoomEnded()
        me = room.participant(s.participant_id)
        if me is None:
            denial = room.denial(participant=s.participant_id)
            if denial is not None:
                # Turned away on another node, its `denied` still on the way over the bus:
                # the refusal a resume would get, not a lost state (found by bench/fuzz.py).
                raise self._refusal(denial)
            # Likewise a room opened afresh by someone else after such a loss: it has never
            # heard of this socket's participant.
            raise StateLost()
        if me.state is not ParticipantState.ADMITTED:
            raise NotAllowed("You are not in the room yet.")
        return room

    async def _apply(self, room_id: str, rule: Callable[[RoomState], Change]) -> Change:
        def apply(current: RoomState | None) -> tuple[RoomState | None, Change]:
            change = rule(room_rules.require_open(current))
            return change.room, change

        return await self.store.update(room_id, apply)

    async def _apply_optional(
        self, room_id: str, rule: Callable[[RoomState], Change | None]
    ) -> Change | None:
        def apply(current: RoomState | None) -> tuple[RoomState | None, Change | None]:
            if current is None or current.ended:
                return None, None
            change = rule(current)
            return (change.room if change else None), change

        return await self.store.update(room_id, apply)

    async def _send(
        self,
        to: str,
        payload: Mapping[str, Any],
        *,
        close_code: int | None = None,
        close_reason: str = "",
    ) -> None:
        await self.bus.publish(
            Envelope(
                to=to,
                origin=self.bus.node_id,
                payload=payload,
                close_code=close_code,
                close_reason=close_reason,
            )
        )

    async def _send_many(self, to: Iterable[str], payload: Mapping[str, Any]) -> None:
        for pid in to:
            await self._send(pid, payload)

    async def _send_lobby(self, room: RoomState) -> None:
        await self._send_many((t.id for t in room.therapists), _lobby(room))

    async def _send_presence(self, room: RoomState) -> None:
        await self._send_many(
            (p.id for p in room.waiting),
            {"type": "waiting_status", "therapist_present": room.therapist_present},
        )


def _follow_gate(change: Change | None, now: float) -> Change | None:
    return None if change is None else room_rules.follow_gate(change, now)


def link_url(public_url: str, token: str) -> str:
    # The token rides in the fragment, so it never reaches a server log or a Referer.
    return f"{public_url}/join#{token}"
