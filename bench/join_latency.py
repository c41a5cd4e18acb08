"""Join latency in real Chromium: Sessionroom's page against two bare pages on a bare relay.

For each of --runs runs, in the same browser and the same process:

  Sessionroom  a therapist and a client open their links. Measured: from opening the
               client's link to its waiting screen (the Join button is pressed as soon as it
               shows), and from the therapist's Admit click to the first remote video frame
               presented on each side (requestVideoFrameCallback).
  baseline     two bare pages, already holding their camera and connected to a minimal
               WebSocket relay (no tokens, no rooms, no waiting room); from the moment one
               is told to call, to the first remote video frame on each side.

Everything is on loopback; run it inside a loopback-only network namespace, like the tests:

  unshare --net -- bash -c 'ip link set lo up && .venv/bin/python -m bench.join_latency'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import WSMsgType, web
from playwright.async_api import Browser, Page, async_playwright

from bench.common import linear_percentile
from signaling.app import create_app
from signaling.config import Settings
from signaling.core.model import Role
from signaling.tokens import KeyRing
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

SECRET = "join-latency-benchmark-secret-0123456789abcdef"
TIMEOUT_MS = 20_000

# Resolves with the wall-clock time of the first remote video frame this page presents.
FIRST_FRAME_JS = """(selector) => new Promise((resolve) => {
  const watch = (video) => video.requestVideoFrameCallback(() => resolve(Date.now()));
  const found = document.querySelector(selector);
  if (found) return watch(found);
  new MutationObserver((_, observer) => {
    const video = document.querySelector(selector);
    if (video) { observer.disconnect(); watch(video); }
  }).observe(document.body, { childList: true, subtree: true });
})"""

BASELINE_PAGE = """<!doctype html><meta charset="utf-8"><title>baseline</title>
<video id="remote" autoplay playsinline muted></video>
<script>
const me = location.hash.slice(1), other = me === "a" ? "b" : "a";
const ws = new WebSocket(`ws://${location.host}/ws`);
const pc = new RTCPeerConnection({ iceServers: [] });
const send = (data) => ws.send(JSON.stringify({ to: other, data }));
pc.onicecandidate = (e) => e.candidate && send({ candidate: e.candidate.toJSON() });
pc.ontrack = (e) => { document.getElementById("remote").srcObject = e.streams[0]; };
ws.onmessage = async (e) => {
  const { description, candidate } = JSON.parse(e.data);
  if (description) {
    await pc.setRemoteDescription(description);
    if (description.type === "offer") {
      await pc.setLocalDescription();
      send({ description: pc.localDescription.toJSON() });
    }
  } else if (candidate) {
    await pc.addIceCandidate(candidate);
  }
};
window.call = async () => {
  const t = Date.now();
  await pc.setLocalDescription();
  send({ description: pc.localDescription.toJSON() });
  return t;
};
window.ready = (async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  stream.getTracks().forEach((t) => pc.addTrack(t, stream));
  await new Promise((r) => (ws.readyState === 1 ? r() : ws.addEventListener("open", r)));
  ws.send(JSON.stringify({ join: me }));
  return true;
})();
</script>"""


def baseline_app() -> web.Application:
    """The bare relay: a socket says who it is; messages go to the one named in `to`."""
    sockets: dict[str, web.WebSocketResponse] = {}

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=BASELINE_PAGE, content_type="text/html")

    async def relay(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        me = ""
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "join" in data:
                me = data["join"]
                sockets[me] = ws
            elif data.get("to") in sockets:
                await sockets[data["to"]].send_str(json.dumps(data["data"]))
        sockets.pop(me, None)
        return ws

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/ws", relay)
    return app


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def new_page(browser: Browser, url: str) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    await page.goto(url)
    return page


async def sessionroom_run(browser: Browser, base: str, keys: KeyRing, n: int) -> dict[str, float]:
    now = int(time.time())
    room = f"bench-{n}"

    def link(role: Role, name: str) -> str:
        token = keys.mint(room=room, role=role, name=name, not_before=now, expires=now + 600)
        return f"{base}/join#{token}"

    therapist = await new_page(browser, link(Role.THERAPIST, "Therapist"))
    await therapist.get_by_role("button", name="Join", exact=True).click()
    await therapist.locator("#screen-call").wait_for()

    opened = time.time() * 1000
    client = await new_page(browser, link(Role.CLIENT, "Client"))
    await client.get_by_role("button", name="Join", exact=True).click()
    await client.locator("#screen-waiting").wait_for()
    waiting = float(await client.evaluate("Date.now()"))

    admit = therapist.get_by_role("button", name="Admit Client")
    await admit.wait_for()
    frames = [
        asyncio.ensure_future(p.evaluate(FIRST_FRAME_JS, ".peer video"))
        for p in (client, therapist)
    ]
    await asyncio.sleep(0.1)  # let both watchers install before the click
    clicked = float(
        await therapist.evaluate(
            "() => { const t = Date.now(); "
            "document.querySelector('[aria-label=\"Admit Client\"]').click(); return t; }"
        )
    )
    client_frame, therapist_frame = await asyncio.gather(*frames)
    for p in (client, therapist):
        await p.context.close()
    return {
        "open_to_waiting": waiting - opened,
        "admit_to_frame_client": float(client_frame) - clicked,
        "admit_to_frame_therapist": float(therapist_frame) - clicked,
    }


async def baseline_run(browser: Browser, base: str) -> dict[str, float]:
    caller = await new_page(browser, f"{base}/#a")
    callee = await new_page(browser, f"{base}/#b")
    for p in (caller, callee):
        await p.evaluate("window.ready")
    frames = [
        asyncio.ensure_future(p.evaluate(FIRST_FRAME_JS, "#remote")) for p in (callee, caller)
    ]
    await asyncio.sleep(0.1)
    called = float(await caller.evaluate("window.call()"))
    callee_frame, caller_frame = await asyncio.gather(*frames)
    for p in (caller, callee):
        await p.context.close()
    return {
        "call_to_frame_callee": float(callee_frame) - called,
        "call_to_frame_caller": float(caller_frame) - called,
    }


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.join_latency", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)

    settings = Settings(secret=SECRET, log_level="warning", node_id="bench")
    keys = KeyRing(SECRET.encode())
    sr_runner, sr_base = await start(create_app(settings, keys))
    bl_runner, bl_base = await start(baseline_app())
    results: dict[str, list[float]] = {}
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            # One warm-up of each, not counted: the first run pays for caches and codecs.
            await sessionroom_run(browser, sr_base, keys, -1)
            await baseline_run(browser, bl_base)
            for n in range(args.runs):
                # Interleaved, so that both see the same noise from the shared machine.
                for key, value in (await sessionroom_run(browser, sr_base, keys, n)).items():
                    results.setdefault(key, []).append(value)
                for key, value in (await baseline_run(browser, bl_base)).items():
                    results.setdefault(key, []).append(value)
                print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
            await browser.close()
    finally:
        await sr_runner.cleanup()
        await bl_runner.cleanup()

    both_sr = [
        max(a, b)
        for a, b in zip(
            results["admit_to_frame_client"], results["admit_to_frame_therapist"], strict=True
        )
    ]
    both_bl = [
        max(a, b)
        for a, b in zip(
            results["call_to_frame_callee"], results["call_to_frame_caller"], strict=True
        )
    ]
    results["admit_to_frame_both"] = both_sr
    results["call_to_frame_both"] = both_bl

    print(f"join latency, {args.runs} runs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, ms")
    print(f"{'measure':<34}{'p50':>9}{'p95':>9}")
    for key in (
        "open_to_waiting",
        "admit_to_frame_client",
        "admit_to_frame_therapist",
        "admit_to_frame_both",
        "call_to_frame_callee",
        "call_to_frame_caller",
        "call_to_frame_both",
    ):
        p50, p95 = (linear_percentile(results[key], q) for q in (0.5, 0.95))
        print(f"{key:<34}{p50:>9.0f}{p95:>9.0f}")
    p95_sr = linear_percentile(both_sr, 0.95)
    p95_bl = linear_percentile(both_bl, 0.95)
    ratio = p95_sr / p95_bl
    print(
        f"admit to first frame (both sides) p95: {p95_sr:.0f} ms; target <= 1000 ms: "
        f"{'met' if p95_sr <= 1000 else 'NOT met'}"
    )
    print(
        f"ratio to baseline p95: {ratio:.2f}; target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
