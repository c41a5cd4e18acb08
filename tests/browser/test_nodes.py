"""A call across two real nodes, behind a load balancer, with real Chromium on both ends:
the client's node is killed mid-call, the page resumes on the other, media never stops;
Redis goes away mid-call, the call's media goes on, and a newcomer gets in once it is back.

The nodes are `sessionroom serve` processes sharing one redis-server; the load balancer is
tests/browser/front_proxy.py. Media is peer to peer, so killing a node only takes away the
signalling socket of whoever was on it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from playwright.async_api import Browser, Page, WebSocket, expect

from signaling.core.model import Role
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
    // What the page says: its alerts (read out at once) and the title of a message screen.
    for (const id of ['alert', 'message-title']) {
      const el = document.getElementById(id);
      new MutationObserver(() => log(`${id}=${el.textContent}`))
        .observe(el, { childList: true, characterData: true, subtree: true });
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


def media_problems(name: str, samples: list[dict[str, Any]]) -> list[str]:
    """Every stall of frames and audio packets (read directly) and of the tile's figure."""
    problems = []
    for key, window in (("frames", WINDOW_S), ("packets", WINDOW_S), ("tile", TILE_WINDOW_S)):
        problems += [f"{name}: {p}" for p in stalls(samples, key, window)]
    return problems


def still_times(samples: list[dict[str, Any]]) -> dict[str, float]:
    return {key: longest_still(samples, key) for key in ("frames", "packets", "tile")}


def timeline(watch: dict[str, Any], zero: float) -> list[tuple[float, str]]:
    """What a page logged, in seconds after `zero` (a time.time())."""
    return [(round(e["t"] / 1000 - zero, 3), e["what"]) for e in watch["events"]]


async def start_watching(*pages: Page) -> None:
    for page in pages:
        await page.evaluate("(ms) => window.__startWatch(ms)", SAMPLE_MS)


async def stop_watching(pages: dict[str, Page]) -> dict[str, dict[str, Any]]:
    """Each page's samples and events, its sampling stopped (its events go on being logged)."""
    return {name: await page.evaluate("window.__stopWatch()") for name, page in pages.items()}


async def events_now(page: Page) -> dict[str, Any]:
    """What a watched page has logged so far."""
    watch: dict[str, Any] = await page.evaluate("({ events: window.__watch.events })")
    return watch


@dataclass
class Call:
    """A therapist on node A and an admitted client on node B, media flowing both ways."""

    therapist: Page
    client: Page
    therapist_id: str
    client_id: str
    client_route: Route  # the client's first socket, to node B
    room: str
    link: Callable[[str, Role, str], str]  # (room, role, name) -> a link through the proxy


@pytest.fixture
async def call(
    browser: Browser,
    cluster: tuple[Server, Server, FrontProxy, str],
    store: aioredis.Redis,
) -> Call:
    _, _, proxy, prefix = cluster
    keys, room = make_keys(), "call"

    def link(room: str, role: Role, name: str) -> str:
        return f"{proxy.url}/join#{mint(keys, room, role, name)}"

    # The therapist's page talks to node A, the client's to node B.
    proxy.prefer = "node-a"
    therapist = await open_watched(browser, link(room, Role.THERAPIST, "Dr Sam"))
    await join(therapist)
    await expect(therapist.locator("#screen-call")).to_be_visible()
    therapist_id = await therapist.evaluate("document.body.dataset.participant")
    proxy.prefer = "node-b"
    client = await open_watched(browser, link(room, Role.CLIENT, "Alex"))
    await join(client)
    await expect(client.locator("#screen-waiting")).to_be_visible()
    client_id = await client.evaluate("document.body.dataset.participant")
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator("#screen-call")).to_be_visible()
    assert (await route_of(proxy, therapist_id)).node == "node-a"
    client_route = await route_of(proxy, client_id)
    assert client_route.node == "node-b" and client_route.resumed is False
    placed = await nodes_in_store(store, prefix, room)
    assert placed[therapist_id][:2] == ("node-a", True), placed
    assert placed[client_id][:2] == ("node-b", True), placed

    # Media both ways, peer to peer.
    await asyncio.gather(media_flowing(client), media_flowing(therapist))
    await expect(client.locator("#connection")).to_have_attribute("data-state", "connected")
    proxy.prefer = "node-a"
    return Call(therapist, client, therapist_id, client_id, client_route, room, link)


async def test_a_killed_node_s_client_resumes_on_the_other_and_media_never_stops(
    browser: Browser,
    cluster: tuple[Server, Server, FrontProxy, str],
    store: aioredis.Redis,
    call: Call,
) -> None:
    _, b, proxy, prefix = cluster
    therapist, client, room = call.therapist, call.client, call.room
    therapist_id, client_id, first_route = call.therapist_id, call.client_id, call.client_route

    await screenshot(client, "40-two-nodes-client-before-kill")
    await start_watching(therapist, client)
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
    watched = await stop_watching({"therapist": therapist, "client": client})
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
        "client_events": timeline(watched["client"], killed_at),
        "therapist_events": timeline(watched["therapist"], killed_at),
        "refused": [(round(t - killed_at, 3), n) for t, n in proxy.refused],
    }
    problems: list[str] = []
    for name, w in watched.items():
        samples = w["samples"]
        assert samples[0]["t"] / 1000 < killed_at - 1.0, "no samples from before the kill"
        assert samples[-1]["t"] / 1000 > max(resumed_at + 3.0, taken_over_at), "too few samples"
        assert all(s["peers"] == 1 for s in samples), f"{name}: the peer's tile went away"
        timings[f"{name}_longest_still"] = still_times(samples)
        problems += media_problems(name, samples)
    print("failover timings (s after the kill):", json.dumps(timings, indent=1))
    assert not problems, (problems, timings)
    assert await stat(client, FRAMES) > before["client"] + 100
    assert await stat(therapist, FRAMES) > before["therapist"] + 100

    # Signalling works again, through node A.
    await chat_reaches(client, therapist, "Still here, through node A")
    await screenshot(therapist, "42-two-nodes-therapist-after-failover")


OUTAGE_S = 4.0  # how long Redis stays away
# What the node says when it cannot reach Redis (ServiceUnavailable's default message); the
# page puts it in its alert (read out by screen readers) and tries again.
UNAVAILABLE = re.compile(r"temporarily unavailable", re.IGNORECASE)
BACK_WITHIN_S = 15.0  # for the newcomer to get in once it is back
AFTER_MESSAGE_MS = 20_000  # the most that the last, observing, step waits


async def test_redis_away_a_connected_call_keeps_its_media_and_a_newcomer_gets_in_once_back(
    browser: Browser,
    cluster: tuple[Server, Server, FrontProxy, str],
    redis_server: RedisServer,
    call: Call,
) -> None:
    _, _, proxy, _ = cluster
    therapist, client = call.therapist, call.client
    pages = {"therapist": therapist, "client": client}
    await start_watching(therapist, client)
    await asyncio.sleep(1.5)  # samples from before Redis went, too

    # A newcomer, a new room's therapist, has the page open (opened first, so that a slow
    # browser start does not eat into the outage).
    newcomer = await open_watched(browser, call.link("newcomer", Role.THERAPIST, "Dr Lee"))
    sockets: list[WebSocket] = []

    def opened(ws: WebSocket) -> None:
        sockets.append(ws)

    newcomer.on("websocket", opened)
    await start_watching(newcomer)

    # Redis goes away mid-call. Nothing a node keeps there (rooms, the bus) is reachable.
    stopped_at = time.time()
    redis_server.stop()
    try:
        # The newcomer joins meanwhile. The node refuses the join as service_unavailable,
        # which is not final: the page keeps trying, with backoff, still on its
        # "Connecting…" screen, and its alert says why.
        await join(newcomer)
        clicked_at = time.time()
        while len(sockets) < 2:
            assert time.time() < stopped_at + OUTAGE_S, "the newcomer's page did not retry"
            await asyncio.sleep(0.05)
        await expect(newcomer.locator("#alert")).to_have_text(UNAVAILABLE)
        # Said where a sighted person is looking too, not only to a screen reader.
        await expect(newcomer.locator("#join-status")).to_contain_text("briefly unavailable")
        await expect(newcomer.locator("#screen-prejoin")).to_be_visible()
        await expect(newcomer.locator("#join")).to_have_text("Connecting…")
        await expect(newcomer.locator("#join")).to_be_disabled()
        await expect(newcomer.locator("#connection")).to_have_attribute(
            "data-state", "reconnecting"
        )
        await expect(newcomer.locator("#screen-message")).to_be_hidden()
        await screenshot(newcomer, "43-redis-away-newcomer-retrying")

        # The call, meanwhile: media on both pages, each still on the call screen.
        await asyncio.sleep(max(0.0, stopped_at + OUTAGE_S - time.time()))
        for page in pages.values():
            await expect(page.locator("#screen-call")).to_be_visible()
        await screenshot(client, "44-redis-away-client-still-in-call")
        watched = await stop_watching(pages)
        newcomer_sockets_in_outage = len(sockets)
    finally:
        started_at = time.time()
        redis_server.start()

    # The newcomer gets in by itself (no reload: the same page, the same watch).
    await expect(newcomer.locator("#screen-call")).to_be_visible(timeout=BACK_WITHIN_S * 1000)
    newcomer_in_at = time.time()
    assert newcomer_in_at - started_at < BACK_WITHIN_S
    newcomer_events = await events_now(newcomer)
    assert newcomer_events["events"], "the newcomer's page was reloaded"
    await expect(newcomer.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(newcomer.locator("#join-status")).to_be_hidden()
    newcomer_route = await route_of(
        proxy, await newcomer.evaluate("document.body.dataset.participant")
    )
    assert newcomer_route.joined is not None and newcomer_route.joined > started_at
    await screenshot(newcomer, "45-redis-back-newcomer-in")

    # What the call's pages showed during the outage: the call screen throughout, never a
    # message screen, never an alert that the session ended; media flowing both ways.
    timings: dict[str, Any] = {
        "newcomer_join_clicked": clicked_at - stopped_at,
        "redis_started": started_at - stopped_at,
        "newcomer_in": newcomer_in_at - stopped_at,
        "newcomer_in_after_redis_back": newcomer_in_at - started_at,
        "newcomer_sockets_in_outage": newcomer_sockets_in_outage,
        "newcomer_sockets": len(sockets),
        "newcomer_socket_joined": newcomer_route.joined - stopped_at,
        "newcomer_events": timeline(newcomer_events, stopped_at),
    }
    problems: list[str] = []
    for name, w in watched.items():
        events = [e["what"] for e in w["events"]]
        timings[f"{name}_events_in_outage"] = timeline(w, stopped_at)
        assert all(e == "screen=screen-call" for e in events if e.startswith("screen=")), (
            name,
            events,
        )
        assert not [e for e in events if e.startswith("message-title=")], (name, events)
        assert not [e for e in events if "ended" in e.lower()], (name, events)
        samples = w["samples"]
        assert samples[0]["t"] / 1000 < stopped_at - 1.0, "no samples from before Redis went"
        assert samples[-1]["t"] / 1000 > stopped_at + OUTAGE_S - 0.5, "too few samples"
        assert all(s["peers"] == 1 for s in samples), f"{name}: the peer's tile went away"
        timings[f"{name}_longest_still"] = still_times(samples)
        problems += media_problems(name, samples)
    print("redis outage timings (s after Redis stopped):", json.dumps(timings, indent=1))
    assert not problems, (problems, timings)

    # And after Redis came back (it kept nothing, so the call's room is gone): each page of
    # the call learns it on its next message and joins afresh; no dead end. The therapist's
    # next message is a chat; the client's is a signal, once its peer connection gives up.
    await asyncio.sleep(3.0)
    for name, page in pages.items():
        await screenshot(page, f"46-redis-back-{name}")
    sent_at = time.time()
    await therapist.get_by_role("button", name="Chat").click()
    await therapist.locator("#chat-input").fill("Still there?")
    await therapist.keyboard.press("Enter")
    await expect(therapist.locator("#screen-call")).to_be_visible()
    await expect(therapist.locator("#connection")).to_have_attribute("data-state", "connected")
    # The client is back in the waiting room, and the therapist can let them in again.
    await expect(client.locator("#screen-waiting")).to_be_visible(timeout=AFTER_MESSAGE_MS)
    await expect(therapist.get_by_role("button", name="Admit Alex")).to_be_visible()
    after: dict[str, Any] = {"therapist_chat_sent": sent_at - stopped_at}
    for name, page in pages.items():
        after[name] = [
            e
            for e in timeline(await events_now(page), stopped_at)
            if e[0] > started_at - stopped_at
        ]
        await screenshot(page, f"47-redis-back-{name}-after-a-message")
    print("after Redis came back (s after it stopped):", json.dumps(after, indent=1))
