"""A call across two real nodes, behind a load balancer, with real Chromium on both ends:
the client's node is killed mid-call, the page resumes on the other, media never stops.

The nodes are `sessionroom serve` processes sharing one redis-server; the load balancer is
tests/browser/front_proxy.py. Media is peer to peer, so killing a node only takes away the
signalling socket of whoever was on it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, expect

from signaling.model import Role
from tests.browser.conftest import screenshot
from tests.browser.front_proxy import FrontProxy, Route
from tests.browser.pages import FRAMES, chat_reaches, join, media_flowing, stat
from tests.redis_server import RedisServer
from tests.server_process import Server
from tests.support import make_keys, mint

pytestmark = [pytest.mark.browser, pytest.mark.network]

GRACE_SECONDS = 20.0
SAMPLE_MS = 250
# The longest time without new media that counts as "never stopped": every pair of samples
# this far apart must show more. The page's own tile figure is refreshed once a second
# (STATS_INTERVAL_MS), so it gets twice as long.
WINDOW_S = 1.0
TILE_WINDOW_S = 2.0

# Before the page's scripts run: keep each RTCPeerConnection (to read its inbound-rtp stats
# directly, four times a second) and get ready to log what the page shows.
WATCH_SCRIPT = """
(() => {
  const pcs = [];
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); pcs.push(this); }
  };
  const watch = { samples: [], events: [], timer: null };
  window.__watch = watch;
  window.__startWatch = (ms) => {
    const conn = document.getElementById('connection');
    const screens = [...document.querySelectorAll('.screen')];
    const visible = () => screens.filter((s) => !s.hidden).map((s) => s.id).join(',');
    const log = (what) => watch.events.push({ t: Date.now(), what });
    log(`screen=${visible()}`);
    log(`state=${conn.dataset.state}`);
    log(`participant=${document.body.dataset.participant}`);
    new MutationObserver(() => log(`state=${conn.dataset.state}`))
      .observe(conn, { attributes: true, attributeFilter: ['data-state'] });
    new MutationObserver(() => log(`participant=${document.body.dataset.participant}`))
      .observe(document.body, { attributes: true, attributeFilter: ['data-participant'] });
    for (const s of screens) {
      new MutationObserver(() => log(`screen=${visible()}`))
        .observe(s, { attributes: true, attributeFilter: ['hidden'] });
    }
    watch.timer = setInterval(async () => {
      let frames = 0;
      let packets = 0;
      for (const pc of pcs) {
        if (pc.connectionState === 'closed') continue;
        (await pc.getStats()).forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          if (s.kind === 'video') frames += s.framesDecoded || 0;
          if (s.kind === 'audio') packets += s.packetsReceived || 0;
        });
      }
      const tile = Number(document.querySelector('.peer')?.dataset.framesDecoded || 0);
      const peers = document.querySelectorAll('.peer').length;
      watch.samples.push({ t: Date.now(), frames, packets, tile, peers });
    }, ms);
  };
  window.__stopWatch = () => { clearInterval(watch.timer); return watch; };
})();
"""


@pytest.fixture
async def cluster(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[tuple[Server, Server, FrontProxy, str]]:
    """Nodes A and B on one Redis, and the load balancer in front of them."""
    prefix = "bn" + secrets.token_hex(4)
    shared = {
        "SESSIONROOM_REDIS_URL": redis_server.url,
        "SESSIONROOM_REDIS_PREFIX": prefix,
        "SESSIONROOM_GRACE_SECONDS": str(int(GRACE_SECONDS)),
    }
    a = Server(tmp_path, SESSIONROOM_NODE_ID="node-a", **shared)
    b = Server(tmp_path, SESSIONROOM_NODE_ID="node-b", **shared)
    proxy = FrontProxy({"node-a": a.url, "node-b": b.url}, prefer="node-a")
    try:
        await asyncio.gather(a.start(), b.start())
        await proxy.start()
        yield a, b, proxy, prefix
    finally:
        await proxy.close()
        await asyncio.gather(a.close(), b.close())


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def open_watched(browser: Browser, url: str) -> Page:
    context = await browser.new_context()
    await context.add_init_script(WATCH_SCRIPT)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(url)
    return page


async def route_of(proxy: FrontProxy, participant: str, timeout: float = 10.0) -> Route:
    """The socket that last joined as `participant`, once it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for route in reversed(proxy.routes):
            if route.participant == participant:
                return route
        await asyncio.sleep(0.05)
    raise AssertionError(f"no socket joined as {participant}: {proxy.routes}")


async def nodes_in_store(store: aioredis.Redis, prefix: str, room: str) -> dict[str, Any]:
    """What Redis (which every node reads) says of each participant's socket."""
    raw = await store.get(f"{prefix}:room:{room}")
    assert raw is not None, f"no room {room} in Redis"
    room_state = json.loads(raw)
    return {
        p["id"]: (p["node"], p["connected"], p["connection"]) for p in room_state["participants"]
    }


def stalls(samples: list[dict[str, Any]], key: str, window: float) -> list[str]:
    """Every pair of samples at least `window` seconds apart in which `key` did not grow."""
    found = []
    for i, first in enumerate(samples):
        later = next((s for s in samples[i + 1 :] if s["t"] - first["t"] >= window * 1000), None)
        if later is not None and later[key] <= first[key]:
            found.append(
                f"{key} {first[key]} -> {later[key]} over {(later['t'] - first['t']) / 1000:.2f}s"
                f" from {first['t'] / 1000:.3f}"
            )
    return found


def longest_still(samples: list[dict[str, Any]], key: str) -> float:
    """The longest time, in seconds, between two samples that showed `key` growing."""
    changes = [b["t"] for a, b in itertools.pairwise(samples) if b[key] > a[key]]
    return max((b - a for a, b in itertools.pairwise(changes)), default=0) / 1000


async def test_a_killed_node_s_client_resumes_on_the_other_and_media_never_stops(
    browser: Browser,
    cluster: tuple[Server, Server, FrontProxy, str],
    store: aioredis.Redis,
) -> None:
    _, b, proxy, prefix = cluster
    keys, room = make_keys(), "failover"

    def link(role: Role, name: str) -> str:
        return f"{proxy.url}/join#{mint(keys, room, role, name)}"

    # The therapist's page talks to node A, the client's to node B.
    proxy.prefer = "node-a"
    therapist = await open_watched(browser, link(Role.THERAPIST, "Dr Sam"))
    await join(therapist)
    await expect(therapist.locator("#screen-call")).to_be_visible()
    therapist_id = await therapist.evaluate("document.body.dataset.participant")
    proxy.prefer = "node-b"
    client = await open_watched(browser, link(Role.CLIENT, "Alex"))
    await join(client)
    await expect(client.locator("#screen-waiting")).to_be_visible()
    client_id = await client.evaluate("document.body.dataset.participant")
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator("#screen-call")).to_be_visible()
    assert (await route_of(proxy, therapist_id)).node == "node-a"
    first_route = await route_of(proxy, client_id)
    assert first_route.node == "node-b" and first_route.resumed is False
    placed = await nodes_in_store(store, prefix, room)
    assert placed[therapist_id][:2] == ("node-a", True), placed
    assert placed[client_id][:2] == ("node-b", True), placed

    # Media both ways, peer to peer.
    await asyncio.gather(media_flowing(client), media_flowing(therapist))
    await expect(client.locator("#connection")).to_have_attribute("data-state", "connected")
    await screenshot(client, "40-two-nodes-client-before-kill")
    for page in (therapist, client):
        await page.evaluate("(ms) => window.__startWatch(ms)", SAMPLE_MS)
    await asyncio.sleep(1.5)  # samples from before the kill, too
    before = {
        "therapist": await stat(therapist, FRAMES),
        "client": await stat(client, FRAMES),
    }

    # Node B dies mid-call; the load balancer sends new sockets to A.
    killed_at = time.time()
    await b.kill()
    proxy.prefer = "node-a"

    # The client's page reconnects through the load balancer to A and resumes its place.
    deadline = killed_at + GRACE_SECONDS
    while not (later := [r for r in proxy.routes if r.opened > killed_at and r.joined]):
        assert time.time() < deadline, f"the client did not come back: {proxy.routes}"
        await asyncio.sleep(0.05)
    [back] = later
    assert (back.node, back.participant, back.resumed) == ("node-a", client_id, True), back
    assert first_route.closed is not None and first_route.closed >= killed_at
    assert back.joined is not None and back.joined - killed_at < GRACE_SECONDS
    await expect(client.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(client.locator("#screen-call")).to_be_visible()
    assert await client.evaluate("document.body.dataset.participant") == client_id
    await screenshot(client, "41-two-nodes-client-resumed-on-a")
    resumed_at = time.time()

    # Media goes on for 3 s more, and on until node A has noticed that B is dead and taken
    # over its sockets (its heartbeat lapses after 5 s): the client's place, by then on A,
    # must not be dropped again.
    await asyncio.sleep(3.0)
    while await store.sismember(f"{prefix}:nodes", "node-b"):
        assert time.time() < deadline, "node A never took over node B"
        await asyncio.sleep(0.2)
    taken_over_at = time.time()
    await asyncio.sleep(1.0)
    watched = {}
    for name, page in (("therapist", therapist), ("client", client)):
        watched[name] = await page.evaluate("window.__stopWatch()")
    placed = await nodes_in_store(store, prefix, room)
    assert placed[client_id][:2] == ("node-a", True), placed
    assert placed[therapist_id][:2] == ("node-a", True), placed

    # What each page showed: the client reconnecting then connected, on the call screen all
    # along and as the same participant; the therapist's call undisturbed.
    client_events = [e["what"] for e in watched["client"]["events"]]
    assert "state=reconnecting" in client_events, client_events
    states = [e for e in client_events if e.startswith("state=")]
    assert states[-1] == "state=connected", client_events
    assert all(e == "screen=screen-call" for e in client_events if e.startswith("screen=")), (
        client_events
    )
    assert all(
        e == f"participant={client_id}" for e in client_events if e.startswith("participant=")
    ), client_events
    therapist_events = [e["what"] for e in watched["therapist"]["events"]]
    assert all(e == "screen=screen-call" for e in therapist_events if e.startswith("screen=")), (
        therapist_events
    )
    # Back within half a second or so, long before node A could notice that B is gone: the
    # therapist is never even told that the client was reconnecting.
    assert [e for e in therapist_events if e.startswith("state=")] == ["state=connected"]
    await expect(therapist.locator(".peer")).to_have_count(1)

    # Media never stopped, either way: at least a second of samples, from before the kill to
    # past the takeover, each pair a second apart shows more frames and audio packets.
    timings = {
        "b_socket_closed": first_route.closed - killed_at,
        "a_socket_opened": back.opened - killed_at,
        "resumed": back.joined - killed_at,
        "taken_over": taken_over_at - killed_at,
        "client_events": [
            (round(e["t"] / 1000 - killed_at, 3), e["what"]) for e in watched["client"]["events"]
        ],
        "therapist_events": [
            (round(e["t"] / 1000 - killed_at, 3), e["what"]) for e in watched["therapist"]["events"]
        ],
        "refused": [(round(t - killed_at, 3), n) for t, n in proxy.refused],
    }
    problems: list[str] = []
    for name, w in watched.items():
        samples = w["samples"]
        assert samples[0]["t"] / 1000 < killed_at - 1.0, "no samples from before the kill"
        assert samples[-1]["t"] / 1000 > max(resumed_at + 3.0, taken_over_at), "too few samples"
        assert all(s["peers"] == 1 for s in samples), f"{name}: the peer's tile went away"
        timings[f"{name}_longest_still"] = {
            key: longest_still(samples, key) for key in ("frames", "packets", "tile")
        }
        for key, window in (("frames", WINDOW_S), ("packets", WINDOW_S), ("tile", TILE_WINDOW_S)):
            problems += [f"{name}: {p}" for p in stalls(samples, key, window)]
    print("failover timings (s after the kill):", json.dumps(timings, indent=1))
    assert not problems, (problems, timings)
    assert await stat(client, FRAMES) > before["client"] + 100
    assert await stat(therapist, FRAMES) > before["therapist"] + 100

    # Signalling works again, through node A.
    await chat_reaches(client, therapist, "Still here, through node A")
    await screenshot(therapist, "42-two-nodes-therapist-after-failover")
