"""The one place that picks the store and bus implementations from settings."""

from __future__ import annotations

from signaling.bus import MessageBus
from signaling.config import Settings
from signaling.memory_bus import MemoryMessageBus
from signaling.memory_store import MemoryRoomStore
from signaling.store import RoomStore

# Redis commands retried this many times, backing off up to this cap, before a caller gets
# `service_unavailable`; the bus's own loops keep reconnecting with the same cap.
REDIS_RETRIES = 2
REDIS_BACKOFF_CAP = 1.0
REDIS_TIMEOUT = 3.0
REDIS_MAX_CONNECTIONS = 200  # per node; the pub/sub listener holds one of them


def make_backends(settings: Settings) -> tuple[RoomStore, MessageBus]:
    if not settings.redis_url:
        return MemoryRoomStore(), MemoryMessageBus(settings.node_id)
    # Imported here: a one-process node needs no Redis client.
    import redis.asyncio as aioredis
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    from signaling.redis_bus import RedisMessageBus
    from signaling.redis_store import RedisRoomStore
    from signaling.sealed_text import derive_keys
    from signaling.secret_file import resolve_secret

    # What Redis keeps is sealed under a key from the nodes' shared signing secret; older
    # secrets still open what was sealed before a rotation (signaling/sealed_text.py).
    keys = derive_keys(
        resolve_secret(settings).secret, [s.encode() for s in settings.previous_secrets]
    )

    # A blocking pool: under a burst, operations wait their turn for a connection (up to the
    # timeout) instead of failing at once when all are in use.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_TIMEOUT,
        retry=Retry(ExponentialBackoff(cap=REDIS_BACKOFF_CAP, base=0.05), REDIS_RETRIES),
        retry_on_error=[ConnectionError, TimeoutError],
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        health_check_interval=10,
    )
    client = aioredis.Redis.from_pool(pool)
    store = RedisRoomStore(
        client, settings.redis_prefix, retention_seconds=settings.room_retention_seconds, keys=keys
    )
    # A mailbox outlives the grace period a little, for a socket that resumes at its end.
    bus = RedisMessageBus(
        client,
        settings.redis_prefix,
        settings.node_id,
        mailbox_seconds=settings.grace_seconds * 2,
        keys=keys,
    )
    return store, bus
