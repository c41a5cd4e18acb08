"""The Redis MessageBus: delivery to a participant on whichever node holds its socket.

- `<prefix>:at:<participant>` names the node holding the participant's socket.
- `<prefix>:node:<node>` is that node's heartbeat, renewed every second with a short TTL.
- `<prefix>:to:<node>` is the node's pub/sub channel; `<prefix>:all` reaches every node.
- `<prefix>:mailbox:<participant>` keeps envelopes while the socket is away (or its node is
  dead), up to MAILBOX_LIMIT, for the grace period.

Publishing and subscribing are Lua scripts, so an envelope sent while a socket moves between
nodes lands either on the new node or in the mailbox that the new node empties: never lost.
Pub/sub keeps nothing for a node that is not listening, so publishing counts the listeners:
with none (the node's subscription dropped while Redis stayed up), the envelope goes to the
mailbox, and the node empties its sockets' mailboxes each time it is subscribed again, before
it reads anything newer.

Every envelope crosses Redis sealed (signaling/sealed_text.py): `{"to", "origin", "sealed"}`,
the whole envelope encrypted under the nodes' shared key with the participant as context. A
mailbox is written to Redis's append-only file and snapshots; a chat, notice or denial in it
must not be readable there. (PUBLISH itself is not written to the append-only file, but an
envelope published to a node that has just lost the socket goes on into a mailbox as is.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from signaling.bus import RESUBSCRIBED, Deliver, Envelope, NodeHandler
from signaling.core.errors import ServiceUnavailable
from signaling.redis_store import unavailable_on_redis_errors
from signaling.sealed_text import SealKeys, Unsealable, seal, unseal

log = logging.getLogger("sessionroom.bus")

MAILBOX_LIMIT = 256
HEARTBEAT_SECONDS = 1.0
NODE_TTL_SECONDS = 5.0  # a node missing its heartbeat this long is dead
BACKOFF_CAP_SECONDS = 5.0
LOCATION_TTL_SECONDS = 24 * 3600.0
START_TIMEOUT_SECONDS = 10.0

# Route an envelope: to the node named by the participant's location if that node is alive
# and listening, else into the mailbox. A live node whose subscription has just dropped has
# no listener on its channel (PUBLISH reaches nobody): the envelope is kept for it, and the
# node empties its sockets' mailboxes once it is subscribed again. ARGV[5], when not empty,
# is a node whose own location entry is stale (it has no such socket): that entry is
# forgotten rather than followed back to it.
_ROUTE = """
local node = redis.call('GET', KEYS[1])
if ARGV[5] ~= '' and node == ARGV[5] then
  redis.call('DEL', KEYS[1])
  node = false
end
if node and redis.call('EXISTS', ARGV[2] .. ':node:' .. node) == 1 then
  if redis.call('PUBLISH', ARGV[2] .. ':to:' .. node, ARGV[1]) > 0 then
    return 1
  end
end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 0
"""

_SUBSCRIBE = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local kept = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return kept
"""

_UNSUBSCRIBE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisMessageBus:
    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        node_id: str,
        *,
        mailbox_seconds: float,
        keys: SealKeys,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._prefix = prefix
        self._node_id = node_id
        self._mailbox_ms = int(mailbox_seconds * 1000)
        self._subscribers: dict[str, Deliver] = {}
        self._handlers: list[NodeHandler] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self._subscriptions = 0  # confirmed subscriptions of this node's channel so far
        self._route_script = client.register_script(_ROUTE)
        self._subscribe = client.register_script(_SUBSCRIBE)
        self._unsubscribe = client.register_script(_UNSUBSCRIBE)

    @property
    def node_id(self) -> str:
        return self._node_id

    def _at(self, participant_id: str) -> str:
        return f"{self._prefix}:at:{participant_id}"

    def _mailbox(self, participant_id: str) -> str:
        return f"{self._prefix}:mailbox:{participant_id}"

    def _heartbeat_key(self, node: str) -> str:
        return f"{self._prefix}:node:{node}"

    @property
    def _nodes(self) -> str:
        return f"{self._prefix}:nodes"

    # ---- lifecycle ----

    async def start(self) -> None:
        async with unavailable_on_redis_errors():
            await self._beat()
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._listen_loop()),
        ]
        # Serve only once this node hears its channel: pub/sub keeps nothing for later.
        try:
            await asyncio.wait_for(self._listening.wait(), START_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ServiceUnavailable("Redis did not take this node's subscription.") from None

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        with contextlib.suppress(RedisError, OSError):
            # Leaving on purpose: publishers switch to mailboxes at once, not after the TTL.
            await self._redis.delete(self._heartbeat_key(self._node_id))
            await self._redis.srem(self._nodes, self._node_id)
        self._subscribers.clear()
        await self._redis.aclose()

    async def _beat(self) -> bool:
        """Renew the heartbeat; True if it had lapsed (this node looked dead meanwhile)."""
        previous = await self._redis.set(
            self._heartbeat_key(self._node_id),
            str(time.time()),
            px=int(NODE_TTL_SECONDS * 1000),
            get=True,
        )
        await self._redis.sadd(self._nodes, self._node_id)
        return previous is None

    async def _heartbeat_loop(self) -> None:
        failures = 0
        while True:
            try:
                lapsed = await self._beat()
                if failures or lapsed:
                    # Back after Redis or this node was away: claim our sockets again and
                    # collect whatever was kept for them meanwhile.
                    await self._reclaim()
                    log.info("bus connected again", extra={"node": self._node_id})
                failures = 0
                await asyncio.sleep(HEARTBEAT_SECONDS)
            except (RedisError, OSError):
                failures += 1
                if failures == 1:
                    log.warning("redis unreachable", extra={"node": self._node_id})
                await asyncio.sleep(min(BACKOFF_CAP_SECONDS, 0.1 * 2**failures))

    async def _reclaim(self) -> None:
        for participant_id, deliver in list(self._subscribers.items()):
            for envelope in await self._claim(participant_id):
                deliver(envelope)

    async def _listen_loop(self) -> None:
        failures = 0
        channel = f"{self._prefix}:to:{self._node_id}"
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(channel, f"{self._prefix}:all")
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Subscribed, at the start or again after the connection dropped
                        # (redis-py resubscribes by itself): what was kept meanwhile is
                        # delivered now, before anything that came after it.
                        if _text(message["channel"]) == channel:
                            await self._reclaim()
                            self._listening.set()
                            failures = 0
                            self._subscriptions += 1
                            if self._subscriptions > 1:
                                # Broadcasts to every node are not kept: say they may have
                                # been missed, so that this node checks what it holds.
                                self._run_handlers({"kind": RESUBSCRIBED})
                    elif message["type"] == "message":
                        await self._received(message)
            except (RedisError, OSError):
                self._listening.clear()
                failures += 1
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(min(BACKOFF_CAP_SECONDS, 0.1 * 2**failures))

    async def _received(self, message: Mapping[str, Any]) -> None:
        try:
            data = json.loads(message["data"])
        except (TypeError, ValueError):
            log.warning("unreadable bus message", extra={"node": self._node_id})
            return
        if "node_message" in data:
            if data.get("origin") == self._node_id:
                return  # to_nodes already ran it here
            self._run_handlers(data["node_message"])
            return
        envelope = self._open(data)
        if envelope is None:
            return
        deliver = self._subscribers.get(envelope.to)
        if deliver is not None:
            deliver(envelope)
            return
        # The socket left this node just now: on to the node it moved to, or into the
        # mailbox. A location that still names this node is stale (its removal failed):
        # forget it, or the envelope would come straight back here, again and again.
        await self._route(envelope.to, message["data"], forget=self._node_id)

    def _run_handlers(self, message: Mapping[str, Any]) -> None:
        for handler in self._handlers:
            try:
                handler(message)
            except Exception:
                log.exception("node message handling failed")

    # ---- delivery ----

    async def publish(self, envelope: Envelope) -> None:
        # Always through Redis, even to a socket on this node: that socket may have just
        # been replaced by one on another node, and Redis knows which is current.
        async with unavailable_on_redis_errors():
            await self._route(envelope.to, self._seal(envelope))

    async def _route(self, participant_id: str, data: str | bytes, forget: str = "") -> None:
        await self._route_script(
            keys=[self._at(participant_id), self._mailbox(participant_id)],
            args=[data, self._prefix, MAILBOX_LIMIT, self._mailbox_ms, forget],
        )

    async def _claim(self, participant_id: str) -> list[Envelope]:
        kept = await self._subscribe(
            keys=[self._at(participant_id), self._mailbox(participant_id)],
            args=[self._node_id, int(LOCATION_TTL_SECONDS * 1000)],
        )
        opened = (self._open(json.loads(raw)) for raw in kept)
        return [envelope for envelope in opened if envelope is not None]

    def _seal(self, envelope: Envelope) -> str:
        sealed = seal(self._keys, json.dumps(envelope.to_dict()), _context(envelope.to))
        return json.dumps({"to": envelope.to, "origin": envelope.origin, "sealed": sealed})

    def _open(self, data: Mapping[str, Any]) -> Envelope | None:
        """The envelope, or None (logged by ids) if it does not open: sealed by a node with
        another secret, or not sealed at all."""
        to = data.get("to")
        try:
            envelope = Envelope.from_dict(
                json.loads(unseal(self._keys, str(data.get("sealed")), _context(str(to))))
            )
        except (Unsealable, ValueError, KeyError, TypeError):
            envelope = None
        if envelope is None or envelope.to != to:
            log.warning(
                "envelope dropped: it does not open with this node's secret",
                extra={"node": self._node_id, "participant": to},
            )
            return None
        return envelope

    async def subscribe(self, participant_id: str, deliver: Deliver) -> None:
        self._subscribers[participant_id] = deliver
        async with unavailable_on_redis_errors():
            kept = await self._claim(participant_id)
        for envelope in kept:
            deliver(envelope)

    async def unsubscribe(self, participant_id: str, deliver: Deliver) -> None:
        if self._subscribers.get(participant_id) != deliver:
            return
        del self._subscribers[participant_id]
        with contextlib.suppress(RedisError, OSError):
            await self._unsubscribe(keys=[self._at(participant_id)], args=[self._node_id])

    async def discard(self, participant_id: str) -> list[Envelope]:
        async with (
            unavailable_on_redis_errors(),
            self._redis.pipeline(transaction=True) as pipe,
        ):
            pipe.lrange(self._mailbox(participant_id), 0, -1)
            pipe.delete(self._mailbox(participant_id))
            kept, _ = await pipe.execute()
        opened = (self._open(json.loads(raw)) for raw in kept)
        return [envelope for envelope in opened if envelope is not None]

    # ---- nodes ----

    def on_node_message(self, handler: NodeHandler) -> None:
        self._handlers.append(handler)

    async def to_nodes(self, message: Mapping[str, Any]) -> None:
        for handler in self._handlers:  # this node at once; the others through Redis
            handler(message)
        async with unavailable_on_redis_errors():
            await self._redis.publish(
                f"{self._prefix}:all",
                json.dumps({"node_message": dict(message), "origin": self._node_id}),
            )

    async def live_nodes(self) -> set[str]:
        async with unavailable_on_redis_errors():
            nodes = sorted(_text(m) for m in await self._redis.smembers(self._nodes))
            if not nodes:
                return set()
            values = await self._redis.mget([self._heartbeat_key(n) for n in nodes])
        return {n for n, v in zip(nodes, values, strict=True) if v is not None}

    async def known_nodes(self) -> set[str]:
        async with unavailable_on_redis_errors():
            members = await self._redis.smembers(self._nodes)
        return {_text(m) for m in members}

    async def claim_dead_node(self, node: str) -> bool:
        """One live node, not all, takes care of a dead node's participants."""
        async with unavailable_on_redis_errors():
            claimed = await self._redis.set(
                f"{self._prefix}:reaping:{node}", self._node_id, nx=True, px=30_000
            )
        return bool(claimed)

    async def forget_node(self, node: str) -> None:
        async with unavailable_on_redis_errors():
            await self._redis.srem(self._nodes, node)

    async def ping(self) -> None:
        async with unavailable_on_redis_errors():
            await self._redis.execute_command("PING")  # type: ignore[no-untyped-call]


def _context(participant_id: str) -> str:
    return f"envelope:{participant_id}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
