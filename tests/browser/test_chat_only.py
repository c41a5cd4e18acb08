"""Links with fewer permissions: a chat-only client (no `signal`) and a therapist without
`record`. The page honours them calmly: no camera prompt, no peer connection that could only
be refused, a "Chat only" tile, no Record button, and no `forbidden` notice anywhere."""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from signaling.core.model import ROLE_PERMISSIONS, Permission, RecordingMode, Role, RoomSettings
from tests.browser.conftest import AXE, Site, open_page, screenshot
from tests.browser.pages import join
from tests.browser.test_accessibility import audit
from tests.support import mint

pytestmark = [pytest.mark.browser, pytest.mark.network]

CHAT_ONLY = frozenset({Permission.CHAT, Permission.CONSENT})
CONSENT = RoomSettings(recording=RecordingMode.CONSENT)
WIDTHS = (320, 375, 1280)

# Counts what the page asks of the browser's media stack: camera and microphone requests
# (keeping their tracks, to tell whether any is still live) and peer connections built.
SPY = """(() => {
    window.spy = { gum: 0, tracks: [], pcs: 0 };
    const devices = navigator.mediaDevices;
    if (devices && devices.getUserMedia) {
        const original = devices.getUserMedia.bind(devices);
        devices.getUserMedia = async (constraints) => {
            window.spy.gum += 1;
            const stream = await original(constraints);
            window.spy.tracks.push(...stream.getTracks());
            return stream;
        };
    }
    const Original = window.RTCPeerConnection;
    window.RTCPeerConnection = class extends Original {
        constructor(...args) { super(...args); window.spy.pcs += 1; }
    };
})();"""


def link(
    site: Site,
    role: Role,
    name: str,
    permissions: frozenset[Permission] | None = None,
    settings: RoomSettings | None = None,
) -> str:
    token = mint(site.keys, "r", role, name, settings=settings, permissions=permissions)
    return f"{site.base}/join#{token}"


class Watched:
    """A page with the spy (and axe) in it, and every WebSocket frame it sent and got."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sent: list[dict[str, Any]] = []
        self.got: list[dict[str, Any]] = []

    def signals_sent(self) -> list[dict[str, Any]]:
        return [m for m in self.sent if m.get("type") == "signal"]

    def errors(self) -> list[str]:
        return [m["code"] for m in self.got if m.get("type") == "error"]

    async def spy(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.page.evaluate(
            "() => ({gum: spy.gum, pcs: spy.pcs,"
            " live: spy.tracks.filter((t) => t.readyState === 'live').map((t) => t.kind)})"
        )
        return result


async def watched_page(browser: Browser, url: str, route: Any = None, **options: Any) -> Watched:
    context = await browser.new_context(**options)
    await context.add_init_script(path=str(AXE))
    await context.add_init_script(script=SPY)
    if route is not None:
        await context.route_web_socket("**/ws", route)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    watched = Watched(page)

    def on_socket(ws: Any) -> None:
        ws.on("framesent", lambda data: watched.sent.append(json.loads(data)))
        ws.on("framereceived", lambda data: watched.got.append(json.loads(data)))

    page.on("websocket", on_socket)
    await page.goto(url)
    return watched


async def fits(page: Page, width: int, buttons: tuple[str, ...]) -> None:
    """Nothing wider than the viewport; these buttons inside it."""
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"page is {scroll}px wide at a {width}px viewport"
    for name in buttons:
        box = await page.get_by_role("button", name=name, exact=True).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, name


async def test_a_chat_only_client_chats_with_a_therapist_without_dead_ends(
    browser: Browser, site: Site
) -> None:
    therapist = await watched_page(browser, link(site, Role.THERAPIST, "Dr Sam"))
    client = await watched_page(browser, link(site, Role.CLIENT, "Alex", CHAT_ONLY))
    t, c = therapist.page, client.page

    # Before joining: said plainly, and no camera or microphone is asked for.
    await expect(c.locator("#screen-prejoin")).to_be_visible()
    await expect(c.get_by_role("heading", name="Join your session")).to_be_visible()
    await expect(c.locator("#prejoin-chat-only")).to_contain_text("This session is by chat only.")
    await expect(c.locator("#prejoin-devices")).to_be_hidden()
    await expect(c.locator("#device-problem")).to_be_hidden()
    await audit(c, "chat-only pre-join")
    await screenshot(c, "chat-only-1-prejoin")

    await join(t)
    await expect(t.locator("#screen-call")).to_be_visible()
    await join(c)
    await expect(c.locator("#screen-waiting")).to_be_visible()
    await expect(c.locator("#waiting-preview-wrap")).to_be_hidden()
    item = t.locator(".lobby-item").filter(has_text="Alex")
    await expect(item.locator(".lobby-media")).to_have_text("Chat only")
    await screenshot(t, "chat-only-2-therapist-lobby")
    await item.get_by_role("button", name="Admit Alex").click()

    # In the call: each sees the other's name and "Chat only"; the chat is ready.
    await expect(c.locator("#screen-call")).to_be_visible()
    await expect(c.locator(".peer .peer-name")).to_have_text("Dr Sam")
    await expect(c.locator(".peer .peer-off")).to_have_text("Chat only")
    await expect(c.locator("#chat-only-note")).to_contain_text("This session is by chat only.")
    await expect(c.locator("#chat-panel")).to_be_visible()
    for name in ("Mute", "Camera off", "Audio only"):
        await expect(c.get_by_role("button", name=name, exact=True)).to_have_count(0)
    await expect(c.locator("#self-view")).to_be_hidden()
    await expect(t.locator(".peer .peer-name")).to_have_text("Alex")
    await expect(t.locator(".peer .peer-off")).to_have_text("Chat only")
    await expect(t.locator(".peer .peer-quality")).to_be_hidden()

    # Chat both ways (the client's panel is open already).
    await c.locator("#chat-input").fill("Hello, I can only type today.")
    await c.keyboard.press("Enter")
    await t.get_by_role("button", name="Chat (1 new)").click()
    await expect(t.locator("#chat-log")).to_contain_text("Alex:Hello, I can only type today.")
    await t.locator("#chat-input").fill("That is fine.")
    await t.get_by_role("button", name="Send").click()
    # The marker: once the reply is on the client's screen, whatever either page was going
    # to do about media after the admission has had its turn.
    await expect(c.locator("#chat-log")).to_contain_text("Dr Sam:That is fine.")

    for page in (t, c):
        await expect(page.locator(".peer")).to_have_count(1)
        await expect(page.locator(".peer")).not_to_contain_text("Connecting")
        await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#alert")).to_have_text("")
    assert await client.spy() == {"gum": 0, "pcs": 0, "live": []}
    assert (await therapist.spy())["pcs"] == 0, "the therapist built a connection to chat only"
    assert client.signals_sent() == [] and therapist.signals_sent() == []
    assert "forbidden" not in client.errors() + therapist.errors()

    await audit(c, "chat-only call")
    await audit(t, "therapist with a chat-only client")
    for width in WIDTHS:
        for page, who in ((c, "client"), (t, "therapist")):
            await page.set_viewport_size({"width": width, "height": 720})
            await fits(page, width, ("Chat", "Leave"))
            await screenshot(page, f"chat-only-{who}-{width}px")


async def test_a_page_told_only_by_joined_stops_its_devices(browser: Browser, site: Site) -> None:
    """Should the page only learn at `joined` that its link has no `signal` (its claims
    unreadable, say), it turns the camera and microphone off there and then."""

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            data = json.loads(message)
            if data.get("type") == "joined":
                perms = data["participant"]["permissions"]
                data["participant"]["permissions"] = [p for p in perms if p != "signal"]
            ws.send(json.dumps(data))

        server.on_message(from_server)

    client = await watched_page(browser, link(site, Role.CLIENT, "Alex"), route=route)
    c = client.page
    await expect(c.locator("#preview")).to_have_js_property("readyState", 4)
    assert (await client.spy())["live"], "the camera should be on before joining"
    await join(c)
    await expect(c.locator("#screen-waiting")).to_be_visible()
    await expect(c.locator("#waiting-preview-wrap")).to_be_hidden()
    await c.wait_for_function("() => spy.tracks.every((t) => t.readyState === 'ended')")
    await expect(c.locator("body")).to_have_attribute("data-media", "false")


async def test_a_therapist_link_without_record_has_no_record_button(
    browser: Browser, site: Site
) -> None:
    without = ROLE_PERMISSIONS[Role.THERAPIST] - {Permission.RECORD}
    limited = await open_page(
        browser, link(site, Role.THERAPIST, "Dr Lee", permissions=without, settings=CONSENT)
    )
    full = await open_page(browser, link(site, Role.THERAPIST, "Dr Sam", settings=CONSENT))
    for page in (limited, full):
        await join(page)
        await expect(page.locator("#screen-call")).to_be_visible()
    await expect(full.get_by_role("button", name="Record", exact=True)).to_be_visible()
    await expect(full.get_by_role("button", name="Recordings")).to_be_visible()
    # Both pages have joined and rendered their controls (the full one shows its button).
    await expect(limited.get_by_role("button", name="End session for everyone")).to_be_visible()
    await expect(limited.locator(".peer .peer-name")).to_have_text("Dr Sam")
    await expect(limited.get_by_role("button", name="Record", exact=True)).to_have_count(0)
    await expect(limited.get_by_role("button", name="Recordings")).to_have_count(0)
    await expect(limited.locator("#alert")).to_have_text("")
