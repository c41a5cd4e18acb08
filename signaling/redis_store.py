"""The Redis RoomStore: rooms shared by every node.

Each room is one JSON value under `<prefix>:room:<id>`, changed with WATCH/MULTI: the pure
mutation runs on what was read and is written only if nobody wrote in between, else it
runs again on the newer room. Every write renews the key's expiry, so a room that nobody
touches for the retention period (or, for an API room, for that long after its last link
expires) disappears by itself.

The room's texts (its lobby notice, the messages of its denials) are sealed in that value
(signaling/sealed_text.py), so that Redis's append-only file and snapshots never hold them in
plaintext; display names and ids stay readable (docs/security.md says for how long).

The events a transition returns are committed in the same transaction onto the stream
`<prefix>:events`, trimmed to about `events_kept`; they hold ids, roles, times and reasons,
never texts, so nothing in them needs sealing.

For each node, `<prefix>:noderooms:<node>` lists the rooms where it held sockets, so that
when a node dies another can find its participants (signaling/liveness.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from signaling.core.errors import ServiceUnavailable
from signaling.core.events import event_from_dict
from signaling.core.model import RoomState
from signaling.sealed_text import SealKeys, Unsealable, seal, unseal
from signaling.store import EVENTS_KEPT, Mutation, StoredEvent, StoreStats, T

log = logging.getLogger("sessionroom.store")

MAX_ATTEMPTS = 100  # contended writes of one room before giving up
SCAN_CHUNK = 500


@asynccontextmanager
async def unavailable_on_redis_errors() -> AsyncIterator[None]:
    """Redis going away is `service_unavailable` to callers, never a crash."""
    try:
        yield
    except RedisError as e:
        raise ServiceUnavailable() from e


class RedisRoomStore:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        *,
        retention_seconds: float,
        keys: SealKeys,
        events_kept: int = EVENTS_KEPT,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = int(retention_seconds * 1000)
        self._keys = keys
        self._events_kept = events_kept

    def _decode(self, raw: bytes | str | None) -> RoomState | None:
        if raw is None:
            return None
        return RoomState.from_dict(room_texts(json.loads(raw), self._open_text))

    def _encode(self, room: RoomState) -> str:
        return json.dumps(
            room_texts(room.to_dict(), lambda text, room_id: self._seal(text, room_id))
        )

    def _seal(self, text: str, room_id: str) -> str:
        return seal(self._keys, text, f"room:{room_id}") if text else ""

    def _open_text(self, value: str, room_id: str) -> str:
        if not value:
            return ""
        try:
            return unseal(self._keys, value, f"room:{room_id}")
        except Unsealable:
            # Sealed by a node with another secret (or written before texts were sealed):
            # the text is lost, the room is not.
            log.warning("room text dropped: it does not open with this node's secret",
                        extra={"room": room_id})  # fmt: skip
            return ""

    def _key(self, room_id: str) -> str:
        return f"{self._prefix}:room:{room_id}"

    @property
    def _index(self) -> str:
        return f"{self._prefix}:rooms"

    @property
    def events_key(self) -> str:
        return f"{self._prefix}:events"

    def node_rooms_key(self, node: str) -> str:
        return f"{self._prefix}:noderooms:{node}"

    async def get(self, room_id: str) -> RoomState | None:
        async with unavailable_on_redis_errors():
            raw = await self._redis.get(self._key(room_id))
        return self._decode(raw)

    async def update(self, room_id: str, mutate: Mutation[T]) -> T:
        key = self._key(room_id)
        async with unavailable_on_redis_errors():
            for _ in range(MAX_ATTEMPTS):
                async with self._redis.pipeline(transaction=True) as pipe:
                    try:
                        await pipe.watch(key)
                        current = self._decode(await pipe.get(key))
                        new, events, result = mutate(current)
                        if new is None or new is current:
                            if events:
                                raise ValueError("a mutation that writes nothing returned events")
                            return result  # leaving the block resets the WATCH
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, self._encode(new), px=self._key_ttl_ms(new))
                        pipe.sadd(self._index, room_id)
                        for node in {p.node for p in new.participants if p.connected}:
                            pipe.sadd(self.node_rooms_key(node), room_id)
                            pipe.pexpire(self.node_rooms_key(node), self._ttl_ms)
                        # Only this run's events, with its write: a run that WATCH discards
                        # never reaches EXEC, so its events are never added.
                        for event in events:
                            pipe.xadd(
                                self.events_key,
                                {"e": json.dumps(event.to_dict())},
                                maxlen=self._events_kept,
                                approximate=True,
                            )
                        await pipe.execute()
                        return result
                    except WatchError:
                        continue  # someone else wrote this room: run the mutation again
        raise ServiceUnavailable("The room is too busy right now; try again.")

    async def events_after(self, position: str | None, limit: int) -> list[StoredEvent]:
        if limit <= 0:
            return []
        start = "-" if position is None else "(" + position
        async with unavailable_on_redis_errors():
            entries = await self._redis.xrange(self.events_key, start, "+", count=limit)
        out: list[StoredEvent] = []
        for entry_id, fields in entries or ():
            raw = (fields or {}).get(b"e") or (fields or {}).get("e")
            if entry_id is None or raw is None:
                raise ValueError(f"not a room event in {self.events_key}: {entry_id!r}")
            out.append(StoredEvent(_text(entry_id), event_from_dict(json.loads(raw))))
        return out

    def _key_ttl_ms(self, room: RoomState) -> int:
        # An API room is kept while its links can still open it, whatever the retention.
        if room.expires_at is None:
            return self._ttl_ms
        return self._ttl_ms + max(0, int((room.expires_at - time.time()) * 1000))

    async def list_rooms(self, after: str | None, limit: int) -> list[RoomState]:
        async with unavailable_on_redis_errors():
            ids = sorted(
                i
                for i in (_text(m) for m in await self._redis.smembers(self._index))
                if after is None or i > after
            )
            rooms: list[RoomState] = []
            step = min(SCAN_CHUNK, limit)
            for start in range(0, len(ids), step):
                chunk = ids[start : start + step]
                values = await self._redis.mget([self._key(i) for i in chunk])
                rooms += [r for r in map(self._decode, values) if r is not None]
                if len(rooms) >= limit:
                    break
        return rooms[:limit]

    async def rooms_of_node(self, node: str) -> list[str]:
        async with unavailable_on_redis_errors():
            members = await self._redis.smembers(self.node_rooms_key(node))
        return sorted(_text(m) for m in members)

    async def forget_node(self, node: str, room_ids: list[str]) -> None:
        async with unavailable_on_redis_errors():
            if room_ids:
                await self._redis.srem(self.node_rooms_key(node), *room_ids)

    async def _all(self) -> list[tuple[str, RoomState | None]]:
        async with unavailable_on_redis_errors():
            ids = sorted(_text(m) for m in await self._redis.smembers(self._index))
            out: list[tuple[str, RoomState | None]] = []
            for start in range(0, len(ids), SCAN_CHUNK):
                chunk = ids[start : start + SCAN_CHUNK]
                values = await self._redis.mget([self._key(i) for i in chunk])
                out += [(i, self._decode(v)) for i, v in zip(chunk, values, strict=True)]
            expired = [i for i, room in out if room is None]
            if expired:  # their keys expired: the index forgets them too
                await self._redis.srem(self._index, *expired)
        return out

    async def stats(self) -> StoreStats:
        live = [r for _, r in await self._all() if r is not None and not r.ended]
        return StoreStats(
            rooms=len(live),
            waiting=sum(len(r.waiting) for r in live),
            participants=sum(len(r.participants) for r in live),
        )

    async def purge(self, ended_before: float, idle_before: float, now: float) -> int:
        gone = [
            room_id
            for room_id, room in await self._all()
            if room is not None
            and (
                (room.ended_at is not None and room.ended_at < ended_before)
                or (
                    room.origin == "link"
                    and not room.ended
                    and not room.participants
                    and room.created_at < idle_before
                )
                or room.unused_after(now)
            )
        ]
        async with unavailable_on_redis_errors():
            if gone:
                await self._redis.delete(*(self._key(i) for i in gone))
                await self._redis.srem(self._index, *gone)
        return len(gone)

    async def ping(self) -> None:
        async with unavailable_on_redis_errors():
            await self._redis.execute_command("PING")  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        return None  # the client is shared with the bus, which closes it


def _text(member: bytes | str) -> str:
    return member.decode() if isinstance(member, bytes) else str(member)


def room_texts(data: dict[str, Any], change: Callable[[str, str], str]) -> dict[str, Any]:
    """The room's dict with `change(text, room id)` applied to each of its free texts: the
    lobby notice, and each denial's message (the last item of an entry, or its `message`)."""
    room_id = str(data["id"])
    out = dict(data)
    if isinstance(out.get("notice"), str):
        out["notice"] = change(out["notice"], room_id)
    denied = []
    for entry in out.get("denied") or ():
        if isinstance(entry, list | tuple) and entry and isinstance(entry[-1], str):
            entry = [*entry[:-1], change(entry[-1], room_id)]
        elif isinstance(entry, dict) and isinstance(entry.get("message"), str):
            entry = {**entry, "message": change(entry["message"], room_id)}
        denied.append(entry)
    if "denied" in out:
        out["denied"] = denied
    return out
