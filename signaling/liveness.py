"""Taking over a dead node's participants.

Every node renews a heartbeat (the bus does). Each node also looks, every few seconds, for
nodes that stopped: one live node claims each dead one and treats its sockets as dropped, so
their places are held for the grace period (the page resumes on another node) and then
given up, just as when a single socket drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from signaling.appkeys import SERVICE
from signaling.core.errors import SessionroomError
from signaling.rooms import RoomService

log = logging.getLogger("sessionroom.liveness")

CHECK_SECONDS = 2.0


async def take_over_dead_nodes(service: RoomService) -> list[str]:
    bus, store = service.bus, service.store
    dead = await bus.known_nodes() - await bus.live_nodes() - {bus.node_id}
    taken = []
    for node in sorted(dead):
        if not await bus.claim_dead_node(node):
            continue  # another live node has it
        rooms = await store.rooms_of_node(node)
        log.warning("node is gone; holding its participants' places", extra={"node": node})
        for room_id in rooms:
            await service.node_lost(room_id, node)
        await store.forget_node(node, rooms)
        await bus.forget_node(node)
        taken.append(node)
    return taken


async def take_over_own_leftovers(service: RoomService) -> None:
    """At start: sockets the store says this node holds belong to an earlier run of it
    (killed, then started again with the same node id). They are as good as dropped."""
    node = service.bus.node_id
    rooms = await service.store.rooms_of_node(node)
    for room_id in rooms:
        await service.node_lost(room_id, node)
    if rooms:
        log.warning("took over sockets left by an earlier run", extra={"node": node})


async def liveness(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        service = app[SERVICE]
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            try:
                await take_over_dead_nodes(service)
            except SessionroomError:
                pass  # Redis is away: the bus says so in the log, and this tries again
            except Exception:
                log.exception("checking other nodes failed")

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
