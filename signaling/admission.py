"""Who is in a room: joining and resuming, the waiting room (admit, deny, allow, its
notice), leaving, and ending the session. Each act applies a pure rule; what the others are
told follows from its committed events (signaling/wire.py)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from media.ice import IceServer, ice_servers_json
from media.turn import TurnConfig, ice_servers_for
from signaling import messages
from signaling.core import room_rules
from signaling.core.errors import Denied, InvalidToken, LinkInUse, NotAllowed
from signaling.core.model import Denial, Participant, ParticipantState, Permission, Role, RoomState
from signaling.core.room_rules import Change
from signaling.room_changes import RoomChanges
from signaling.session import Session
from signaling.tokens import (
    LinkClaims,
    new_resume_secret,
    resume_matches,
    resume_token,
    split_resume_token,
)
from signaling.wire import Wire

log = logging.getLogger("sessionroom.rooms")

LINK_ALERT_SECONDS = 60.0


@dataclass(frozen=True)
class Joined:
    session: Session
    message: messages.Joined


def refusal(denial: Denial) -> Denied:
    """The refusal a turned-away link or participant gets: `denied`, with the therapist's
    words (or the default text)."""
    return Denied(denial.message or None)


class Admission:
    def __init__(
        self,
        changes: RoomChanges,
        wire: Wire,
        *,
        node_id: str,
        ice_servers: Sequence[IceServer] = (),
        turn: TurnConfig | None = None,
        clock: Callable[[], float],
    ) -> None:
        self._changes = changes
        self._wire = wire
        self._node = node_id
        self._ice = tuple(ice_servers)
        self._turn = turn  # each `joined` carries that participant's own TURN credentials
        self.clock = clock
        self._link_alerts: dict[str, float] = {}  # link id -> when therapists were told

    # ---- joining ----

    async def join(
        self, claims: LinkClaims, resume: str | None, *, new_device: bool = False
    ) -> Joined:
        async with self._changes.hold(claims.room):
            now = self.clock()
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
                node=self._node,
                media=claims.may(Permission.SIGNAL),
            )
            resume_id, resume_secret = split_resume_token(resume) if resume else ("", "")

            def apply(current: RoomState | None) -> Change:
                opened = room_rules.open_room(
                    current, claims.room, claims.room_settings, now, "link"
                )
                room = opened.room
                held = room.participant(resume_id) if resume_id else None
                denial = room.denial(participant=resume_id) if resume_id else None
                if denial is not None:
                    raise refusal(denial)
                if held is not None and held.link_id != claims.link_id:
                    raise InvalidToken("The resume token is not valid.")
                if held is not None and resume_matches(resume_secret, held.resume_hash):
                    # The place back, with a new secret: the one just used stops working.
                    change = room_rules.reconnect(room, held.id, self._node, secret_hash, now=now)
                else:
                    # No secret, an old one, or an expired place: a join without the secret,
                    # which never takes a place back (room_rules.join).
                    turned_away = room_rules.link_denial(room, claims.link_id)
                    if turned_away is not None:
                        raise refusal(turned_away)
                    change = room_rules.join(room, newcomer, new_device=new_device)
                change = room_rules.follow_gate(change, now)
                return replace(change, events=(*opened.events, *change.events))

            try:
                change = await self._changes.apply(claims.room, apply)
            except LinkInUse:
                if claims.role is Role.CLIENT:
                    await self._tell_therapists_link_in_use(claims)
                raise
            assert change is not None
            me = change.after
            assert me is not None
            resumed = change.before is not None
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
            message = messages.joined(
                change.room,
                me,
                permissions=claims.permissions,
                ice_servers=ice_servers_json(
                    ice_servers_for(me.id, self._ice, self._turn, now=self.clock())
                ),
                resume=resume_token(me.id, secret),
                resumed=resumed,
            )
            return Joined(session, message)

    async def _tell_therapists_link_in_use(self, claims: LinkClaims) -> None:
        # Someone may try again and again ("Join here instead" is one more try): tell the
        # therapists once per link and minute, not every try.
        now = self.clock()
        self._link_alerts = {
            k: t for k, t in self._link_alerts.items() if now - t < LINK_ALERT_SECONDS
        }
        if claims.link_id in self._link_alerts:
            return
        self._link_alerts[claims.link_id] = now
        room = await self._changes.store.get(claims.room)
        if room is None:
            return
        holder = room.by_link(claims.link_id)
        log.warning(
            "link used on a second device",
            extra={"room": room.id, "participant": holder.id if holder else None},
        )
        await self._wire.send_many(
            (t.id for t in room.therapists), messages.link_in_use(holder.id if holder else None)
        )

    # ---- the waiting room ----

    async def admit(self, s: Session, target: str) -> None:
        await self._act(
            s,
            Permission.ADMIT,
            lambda r, now: room_rules.follow_gate(
                room_rules.admit(r, s.participant_id, target, now=now), now
            ),
        )
        log.info("admitted", extra={**s.ids, "participant": target, "by": s.participant_id})

    async def deny(self, s: Session, target: str, message: str) -> None:
        await self._act(
            s,
            Permission.DENY,
            lambda r, now: room_rules.deny(r, s.participant_id, target, message, now),
        )
        log.info("denied", extra={**s.ids, "participant": target, "by": s.participant_id})

    async def allow(self, s: Session, denied_id: str) -> None:
        """A therapist lets a turned-away link join again (into the waiting room)."""
        await self._act(
            s,
            Permission.ADMIT,
            lambda r, now: room_rules.allow(r, s.participant_id, denied_id, now=now),
        )
        log.info("allowed again", extra={**s.ids, "participant": denied_id, "by": s.participant_id})

    async def lobby_notice(self, s: Session, text: str) -> None:
        await self._act(
            s,
            Permission.LOBBY_NOTICE,
            lambda r, now: room_rules.set_notice(r, s.participant_id, text, now=now),
        )

    async def _act(
        self, s: Session, permission: Permission, rule: Callable[[RoomState, float], Change]
    ) -> None:
        """A therapist's act on the waiting room: `rule` applied to the open room."""
        s.require(permission)
        async with self._changes.hold(s.room_id):
            now = self.clock()
            await self._changes.apply(s.room_id, lambda r: rule(room_rules.require_open(r), now))

    # ---- going ----

    async def leave(self, s: Session) -> None:
        async with self._changes.hold(s.room_id):
            now = self.clock()
            change = await self._changes.apply(
                s.room_id, lambda r: _follow_gate(_left(r, s.participant_id, now), now)
            )
            if change is not None:
                log.info("participant left", extra={**s.ids, "reason": "left"})

    async def end(self, s: Session) -> None:
        s.require(Permission.END)
        room = await self._changes.store.get(s.room_id)
        me = room.participant(s.participant_id) if room else None
        if me is None or not me.in_room:
            raise NotAllowed("Only a therapist in the room can end the session.")
        await self.end_room(s.room_id, by=s.participant_id)

    async def end_room(self, room_id: str, by: str | None = None) -> None:
        async with self._changes.hold(room_id):
            now = self.clock()
            await self._changes.apply(room_id, lambda r: room_rules.end(r, now, by))
            log.info("room ended", extra={"room": room_id, "participant": by})


def _left(room: RoomState | None, participant_id: str, now: float) -> Change | None:
    if room is None or room.ended:
        return None
    return room_rules.leave(room, participant_id, now=now)


def _follow_gate(change: Change | None, now: float) -> Change | None:
    return None if change is None else room_rules.follow_gate(change, now)
