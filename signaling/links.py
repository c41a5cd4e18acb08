"""Links and the rooms a practice makes: minting a link's token, creating a room through
the API, and keeping a room while a link for it may still be used."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace

from signaling.core import room_rules
from signaling.core.errors import Conflict, NotFound
from signaling.core.model import Permission, Role, RoomSettings, RoomState
from signaling.core.room_rules import Change
from signaling.room_changes import RoomChanges
from signaling.tokens import KeyRing

log = logging.getLogger("sessionroom.rooms")


@dataclass(frozen=True)
class MintedLink:
    url: str
    expires: int  # unix time


def link_url(public_url: str, token: str) -> str:
    # The token rides in the fragment, so it never reaches a server log or a Referer.
    return f"{public_url}/join#{token}"


class Links:
    def __init__(
        self,
        changes: RoomChanges,
        keys: KeyRing,
        *,
        public_url: str,
        clock: Callable[[], float],
    ) -> None:
        self._changes = changes
        self.keys = keys
        self._public_url = public_url
        self.clock = clock

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

        def create(current: RoomState | None) -> Change:
            if current is not None:
                raise Conflict("A room with that id exists.")
            return room_rules.open_room(None, room_id, settings, now, "api", expires_at=expires_at)

        async with self._changes.hold(room_id):
            change = await self._changes.apply(room_id, create)
        assert change is not None
        log.info("room created", extra={"room": room_id})
        return change.room

    async def room_for_link(self, room_id: str) -> RoomState:
        """The open room a new API link is for; NotFound if it is gone or ended."""
        room = await self._changes.store.get(room_id)
        if room is None or room.ended:
            raise NotFound("No such room.")
        return room

    async def keep_room_until(self, room_id: str, expires_at: float) -> None:
        """A new link for the room expires at `expires_at`: keep the room until then."""

        def extend(current: RoomState | None) -> Change | None:
            if current is None or current.ended:
                raise NotFound("No such room.")
            if current.expires_at is None or current.expires_at >= expires_at:
                return None
            return Change(replace(current, expires_at=expires_at))

        await self._changes.apply(room_id, extend)
