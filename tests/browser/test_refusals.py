"""A refusal never ends the session of whoever acted: only the server closing the socket does.
Each refusal here is tried in Chromium and must be a visible notice, inside the viewport, with
the person's screen unchanged and the page still usable (chat goes through afterwards). The
page's one list of codes (web/js/refusals.js) is checked against docs/protocol.md's table."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, Request, WebSocket, WebSocketRoute, expect

from signaling.core.model import ROLE_PERMISSIONS, Permission, RecordingMode, Role, RoomSettings
from tests.browser.conftest import ARTIFACTS, AXE, Site
from tests.browser.pages import chat_reaches, join
from tests.browser.test_accessibility import audit
from tests.support import mint

pytestmark = [pytest.mark.browser, pytest.mark.network]

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
WIDTHS = (320, 375, 1280)

# Keeps every WebSocket the page opens, so that a test can send on the page's own socket.
SOCKETS = """(() => {
    const Native = window.WebSocket;
    window.sockets = [];
    window.WebSocket = class extends Native {
        constructor(...args) { super(...args); window.sockets.push(this); }
    };
})();"""

ROOM_FULL = (
    "The room is full: Sam is still waiting. Let someone leave first, or raise the room's "
    "client limit."
)


class Person:
    """A page with the socket spy and axe in it, and the sockets it opened."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sockets: list[WebSocket] = []
        page.on("websocket", self.opened)

    def opened(self, ws: WebSocket) -> None:
        self.sockets.append(ws)

    async def send_raw(self, *messages: dict[str, Any]) -> None:
        """Sends on the page's own, live socket, as a page could."""
        await self.page.evaluate(
            "(messages) => { const ws = window.sockets.at(-1);"
            " for (const m of messages) ws.send(JSON.stringify(m)); }",
            list(messages),
        )


async def person(browser: Browser, url: str, route: Any = None) -> Person:
    context = await browser.new_context()
    await context.add_init_script(path=str(AXE))
    await context.add_init_script(script=SOCKETS)
    if route is not None:
        await context.route_web_socket("**/ws", route)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    found = Person(page)
    await page.goto(url)
    return found


def link(
    site: Site,
    room: str,
    role: Role,
    name: str,
    settings: RoomSettings | None = None,
    permissions: frozenset[Permission] | None = None,
) -> str:
    token = mint(site.keys, room, role, name, settings=settings, permissions=permissions)
    return f"{site.base}/join#{token}"


async def notice_shown(page: Page, text: str | re.Pattern[str]) -> None:
    """A visible notice, inside the viewport, said to a screen reader too."""
    bar = page.locator("#page-notice")
    await expect(bar).to_be_visible()
    await expect(page.locator("#page-notice-text")).to_have_text(text)
    await expect(page.locator("#alert")).to_have_text(text)
    await expect(bar).to_be_in_viewport(ratio=1)
    inside = await bar.evaluate(
        "(el) => { const r = el.getBoundingClientRect();"
        " return r.width > 0 && r.left >= 0 && r.top >= 0"
        " && r.right <= window.innerWidth && r.bottom <= window.innerHeight; }"
    )
    assert inside, "the notice is not wholly inside the viewport"


async def still_in_call(who: Person, sockets: int = 1) -> None:
    """The call screen, not a message screen, on the socket the page started with."""
    await expect(who.page.locator("#screen-call")).to_be_visible()
    await expect(who.page.locator("#screen-message")).to_be_hidden()
    assert len(who.sockets) == sockets and not who.sockets[-1].is_closed()


async def chat(sender: Page, receiver: Page, text: str) -> None:
    """`sender` sends a chat message (opening the chat if it is closed); `receiver` gets it."""
    if not await sender.locator("#chat-input").is_visible():
        await sender.get_by_role("button", name=re.compile(r"^Chat")).click()
    await sender.locator("#chat-input").fill(text)
    await sender.keyboard.press("Enter")
    await expect(receiver.get_by_text(text)).to_have_count(1)


async def shot(page: Page, name: str) -> None:
    """What is in the viewport (not the whole page): the notice must be in it."""
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "screenshots" / f"{name}.png"))


# ---------- the page's list against the protocol's table ----------


def protocol_errors() -> dict[str, bool]:
    """docs/protocol.md's Errors table: each code, and whether the server may close on it."""
    text = PROTOCOL.read_text()
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, bool] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not re.fullmatch(r"`[a-z_]+`", cells[0]):
            continue
        when, socket = cells[1], cells[-1]
        if socket == "see left":
            socket = when
        rows[cells[0].strip("`")] = "closed" in socket
    assert len(rows) > 15, "the Errors table was not found or not parsed"
    return rows


async def test_the_pages_list_of_codes_matches_the_protocol(browser: Browser, site: Site) -> None:
    page = await browser.new_page()
    await page.goto(f"{site.base}/join")
    listed: dict[str, dict[str, Any]] = await page.evaluate(
        """async () => {
            const { REFUSALS } = await import('/static/js/refusals.js');
            return Object.fromEntries(Object.entries(REFUSALS).map(([code, e]) => [code, {
                closes: Boolean(e.closed), retry: Boolean(e.closed?.retry),
                title: e.closed?.title ?? null, text: e.closed?.text,
                notice: typeof e.notice === 'function',
            }]));
        }"""
    )
    table = protocol_errors()
    assert sorted(listed) == sorted(table), "the page and docs/protocol.md list other codes"
    closing = {code for code, closes in table.items() if closes}
    assert {code for code, e in listed.items() if e["closes"]} == closing
    for code, entry in listed.items():
        if entry["closes"] and not entry["retry"]:
            assert entry["title"], f"{code} ends the session without a title"
            assert entry["text"] is None or entry["text"], code
        if not table[code] or code in ("room_full", "bad_message", "not_allowed"):
            # It may come while the socket stays open: it needs a notice.
            assert entry["notice"], f"{code} can come on an open socket but has no notice"


# ---------- room_full on admit: the scenario of the issue ----------


async def test_admitting_into_a_full_room_is_a_notice_and_the_call_goes_on(
    browser: Browser, site: Site
) -> None:
    therapist = await person(browser, link(site, "demo", Role.THERAPIST, "Dr Lee"))
    alex = await person(browser, link(site, "demo", Role.CLIENT, "Alex"))
    sam = await person(browser, link(site, "demo", Role.CLIENT, "Sam"))
    t = therapist.page
    for who in (therapist, alex):
        await join(who.page)
    await t.get_by_role("button", name="Admit Alex").click()
    await expect(alex.page.locator("#screen-call")).to_be_visible()
    await expect(t.locator(".peer .peer-name")).to_have_text("Alex")
    await join(sam.page)
    await expect(sam.page.locator("#screen-waiting")).to_be_visible()

    await t.get_by_role("button", name="Admit Sam").click()
    await notice_shown(t, ROOM_FULL)
    await still_in_call(therapist)
    # Sam is still waiting, on both sides; Alex's tile is still there and still connected.
    await expect(t.get_by_role("button", name="Admit Sam")).to_be_visible()
    await expect(sam.page.locator("#screen-waiting")).to_be_visible()
    await expect(t.locator(".peer")).to_have_count(1)
    await expect(t.get_by_role("button", name="End session for everyone")).to_be_visible()
    await audit(t, "a room_full notice in the call")

    # The client in the call is unaffected: a message from the therapist's same socket
    # arrives, and the therapist's tile never turned into a ghost that is reconnecting.
    await chat_reaches(t, alex.page, "Still here, Alex.")
    await still_in_call(therapist)
    await expect(alex.page.locator(".peer")).to_have_count(1)
    await expect(alex.page.locator(".peer .peer-name")).to_have_text("Dr Lee")
    assert await alex.page.locator(".peer").get_attribute("data-quality") != "reconnecting"
    assert len(alex.sockets) == 1 and not alex.sockets[0].is_closed()

    for width in WIDTHS:
        await t.set_viewport_size({"width": width, "height": 720})
        await t.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        await notice_shown(t, ROOM_FULL)
        scroll = await t.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"page is {scroll}px wide at {width}px"
        await shot(t, f"60-room-full-notice-{width}px")

    # Dismissed, it goes; the call stays.
    await t.get_by_role("button", name="Dismiss").click()
    await expect(t.locator("#page-notice")).to_be_hidden()
    await still_in_call(therapist)


# ---------- conflict and not_found: two therapists, one with a stale waiting list ----------


class Stale:
    """Routes a page's socket, and while `frozen`, keeps waiting-list updates from it."""

    def __init__(self) -> None:
        self.frozen = False

    def route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            if self.frozen and json.loads(message).get("type") == "lobby":
                return
            ws.send(message)

        server.on_message(from_server)


async def test_admitting_someone_another_therapist_acted_on_is_a_notice(
    browser: Browser, site: Site
) -> None:
    stale = Stale()
    first = await person(browser, link(site, "two", Role.THERAPIST, "Dr Sam"))
    second = await person(browser, link(site, "two", Role.THERAPIST, "Dr Lee"), stale.route)
    alex = await person(browser, link(site, "two", Role.CLIENT, "Alex"))
    kim = await person(browser, link(site, "two", Role.CLIENT, "Kim"))
    for who in (first, second, alex):
        await join(who.page)
    await expect(second.page.get_by_role("button", name="Admit Alex")).to_be_visible()

    # conflict: the other therapist let Alex in first.
    stale.frozen = True
    await first.page.get_by_role("button", name="Admit Alex").click()
    await expect(alex.page.locator("#screen-call")).to_be_visible()
    await expect(second.page.locator(".peer-name", has_text="Alex")).to_be_visible()
    await second.page.get_by_role("button", name="Admit Alex").click()
    await notice_shown(second.page, "Alex was already let in or turned away: someone acted first.")
    await still_in_call(second)
    await chat_reaches(second.page, alex.page, "Hello from Dr Lee.")

    # not_found: Kim left the waiting room before this therapist pressed Admit.
    stale.frozen = False
    await join(kim.page)
    await expect(second.page.get_by_role("button", name="Admit Kim")).to_be_visible()
    stale.frozen = True
    await kim.page.get_by_role("button", name="Leave").click()
    await expect(first.page.get_by_role("button", name="Admit Kim")).to_have_count(0)
    await second.page.get_by_role("button", name="Admit Kim").click()
    await notice_shown(second.page, "Kim is no longer here.")
    await still_in_call(second)
    await shot(second.page, "61-not-found-notice-1280px")
    await chat(second.page, alex.page, "Kim has gone.")


# ---------- forbidden, rate_limited, a recording refusal, chat_too_long ----------


async def test_refusals_of_what_a_page_sent_are_notices(browser: Browser, site: Site) -> None:
    therapist = await person(browser, link(site, "r", Role.THERAPIST, "Dr Sam"))
    client = await person(browser, link(site, "r", Role.CLIENT, "Alex"))
    for who in (therapist, client):
        await join(who.page)
    await therapist.page.get_by_role("button", name="Admit Alex").click()
    await expect(client.page.locator("#screen-call")).to_be_visible()
    await expect(therapist.page.locator(".peer .peer-name")).to_have_text("Alex")

    # forbidden: a client cannot end the session.
    await client.send_raw({"type": "end"})
    await notice_shown(client.page, "Your link does not allow that.")
    await still_in_call(client)
    await shot(client.page, "62-forbidden-notice-1280px")

    # A recording refusal: this room does not record.
    await therapist.send_raw({"type": "recording_request"})
    await notice_shown(therapist.page, "Recording is off for this room.")
    await still_in_call(therapist)

    # chat_too_long, past what the chat box lets anyone type.
    await client.send_raw({"type": "chat", "text": "x" * 2001})
    await notice_shown(client.page, re.compile(r"too long to send"))
    await still_in_call(client)

    # rate_limited: a burst well past 50 messages.
    await client.send_raw(*({"type": "signal", "to": "p-nobody", "data": {}} for _ in range(90)))
    await notice_shown(
        client.page,
        "You are sending too fast, so the last message was not sent. "
        "Please wait a moment and try again.",
    )
    await still_in_call(client)
    await expect(therapist.page.locator(".peer")).to_have_count(1)
    await chat(client.page, therapist.page, "Sorry, all good now.")
    await chat(therapist.page, client.page, "No problem.")
    await still_in_call(client)
    await still_in_call(therapist)


# ---------- what still ends a session: the server closing the socket ----------


async def test_a_server_close_still_ends_the_session(browser: Browser, site: Site) -> None:
    """An expired link: the server answers `token_expired` and closes the socket with it, and
    that, not the code, ends the page's session: its end screen, no notice, no retry."""
    now = time.time()
    token = mint(site.keys, "r", Role.CLIENT, "Alex", not_before=now - 7200, valid_for=3600)
    client = await person(browser, f"{site.base}/join#{token}")
    await join(client.page)
    await expect(client.page.locator("#message-title")).to_have_text("This link has expired")
    await expect(client.page.locator("#page-notice")).to_be_hidden()
    await expect(client.page.locator("#screen-call")).to_be_hidden()
    assert len(client.sockets) == 1
    if not client.sockets[0].is_closed():
        await client.sockets[0].wait_for_event("close")


# ---------- the recordings panel without `record` ----------


async def test_a_therapist_without_record_never_asks_for_recordings(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site
    consent = RoomSettings(recording=RecordingMode.CONSENT)
    without = ROLE_PERMISSIONS[Role.THERAPIST] - {Permission.RECORD}
    limited = await person(
        browser, link(site, "r", Role.THERAPIST, "Dr Lee", consent, permissions=without)
    )
    full = await person(browser, link(site, "r", Role.THERAPIST, "Dr Sam", consent))
    asked: dict[str, list[str]] = {"limited": [], "full": []}

    def watch(name: str) -> Any:
        def on_request(request: Request) -> None:
            if "/api/v1/recordings" in request.url:
                asked[name].append(request.url)

        return on_request

    limited.page.on("request", watch("limited"))
    full.page.on("request", watch("full"))
    for who in (limited, full):
        await join(who.page)
        await expect(who.page.locator("#screen-call")).to_be_visible()
    await expect(limited.page.get_by_role("button", name="Recordings")).to_have_count(0)
    # The session ends: the full therapist's page lists the recordings on its last screen
    # (the marker that the lists were asked for); the limited one's never asks.
    limited.page.on("dialog", lambda dialog: dialog.accept())
    await limited.page.get_by_role("button", name="End session for everyone").click()
    for who in (limited, full):
        await expect(who.page.locator("#message-title")).to_have_text("The session has ended")
    await expect(full.page.locator("#recordings-status")).to_have_text(
        "There are no recordings of this session."
    )
    assert asked["full"], "the full therapist's page should have listed the recordings"
    assert asked["limited"] == []
    await expect(limited.page.locator("#recordings-panel")).to_be_hidden()
