"""A therapist and a client in two browsers: wait, admit, talk, chat, mute, leave, end."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from signaling.core.model import Role
from tests.browser.conftest import Site, open_page, screenshot
from tests.browser.pages import FRAMES, join, media_flowing, stat, video_advancing, wait_stat_above

pytestmark = [pytest.mark.browser, pytest.mark.network]


async def test_wait_admit_talk_chat_mute_leave_end(browser: Browser, site: Site) -> None:
    therapist = await open_page(browser, site.link("r1", Role.THERAPIST, "Dr Sam"))
    client = await open_page(browser, site.link("r1", Role.CLIENT, "Alex"))

    await expect(client.locator("#prejoin-name")).to_have_text("Alex")
    await expect(client.locator("#preview")).to_have_js_property("readyState", 4)
    await screenshot(client, "1-prejoin")

    await join(therapist)
    await expect(therapist.locator("#screen-call")).to_be_visible()
    await join(client)
    await expect(
        client.get_by_role("heading", name="Your therapist will let you in shortly")
    ).to_be_visible()
    await expect(client.locator("#therapist-presence")).to_have_text("Your therapist is here.")
    await screenshot(client, "2-waiting")

    item = therapist.locator(".lobby-item").filter(has_text="Alex")
    await expect(item).to_be_visible()
    await expect(item.locator(".lobby-since")).to_contain_text("Waiting")
    await screenshot(therapist, "3-therapist-lobby")
    await item.get_by_role("button", name="Admit Alex").click()

    await expect(client.locator("#screen-call")).to_be_visible()
    await expect(client.locator(".peer .peer-name")).to_have_text("Dr Sam")
    await expect(therapist.locator(".peer .peer-name")).to_have_text("Alex")
    for page in (therapist, client):
        await media_flowing(page)
        await video_advancing(page)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    await screenshot(client, "4-in-call-client")
    await screenshot(therapist, "5-in-call-therapist")

    # Chat both ways.
    await client.get_by_role("button", name="Chat").click()
    await client.locator("#chat-input").fill("Hello, can you hear me?")
    await client.keyboard.press("Enter")
    await expect(therapist.get_by_role("button", name="Chat (1 new)")).to_be_visible()
    await therapist.get_by_role("button", name="Chat (1 new)").click()
    await expect(therapist.locator("#chat-log")).to_contain_text("Alex:Hello, can you hear me?")
    await therapist.locator("#chat-input").fill("Yes, clearly.")
    await therapist.get_by_role("button", name="Send").click()
    await expect(client.locator("#chat-log")).to_contain_text("Dr Sam:Yes, clearly.")

    # Mute is seen on the other side.
    await client.get_by_role("button", name="Mute").click()
    await expect(client.get_by_role("button", name="Unmute")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(therapist.locator(".peer .peer-muted")).to_be_visible()
    await client.get_by_role("button", name="Unmute").click()
    await expect(therapist.locator(".peer .peer-muted")).to_be_hidden()
    # Camera off is seen too.
    await client.get_by_role("button", name="Camera off").click()
    await expect(therapist.locator(".peer .peer-off")).to_be_visible()

    # The client leaves; the therapist sees them go.
    await client.locator("#leave").click()
    await expect(client.get_by_role("heading", name="You have left the session")).to_be_visible()
    await expect(therapist.locator(".peer")).to_have_count(0)
    await expect(therapist.locator("#alone")).to_be_visible()

    # The therapist ends the session.
    therapist.once("dialog", lambda dialog: dialog.accept())
    await therapist.get_by_role("button", name="End session for everyone").click()
    await expect(therapist.get_by_role("heading", name="The session has ended")).to_be_visible()
    await screenshot(therapist, "6-ended")


async def test_the_call_connects_when_a_newcomer_s_signal_overtakes_word_of_it(
    browser: Browser, site: Site
) -> None:
    """Across nodes, a newcomer's first signal can reach the therapist before the news that
    it joined (which says the therapist makes the offer). The therapist's socket here holds
    back `peer_joined` until a signal from the newcomer has been passed on: the call must
    still connect, with media both ways."""
    seen: list[str] = []
    held: list[str | bytes] = []

    def to_therapist(message: str | bytes) -> list[str | bytes]:
        kind = json.loads(message).get("type")
        if kind == "peer_joined":
            held.append(message)
            return []
        seen.append(kind)
        if kind == "signal" and held:
            seen.extend("peer_joined" for _ in held)
            late, held[:] = list(held), []
            return [message, *late]
        return [message]

    therapist, client = await call_with_therapist_socket_through(browser, site, to_therapist)
    await expect(therapist.locator(".peer .peer-name")).to_have_text("Alex")
    assert seen.index("signal") < seen.index("peer_joined"), seen
    for page in (therapist, client):
        await media_flowing(page)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "connected")


async def test_the_call_connects_when_an_answer_is_lost_on_the_way(
    browser: Browser, site: Site
) -> None:
    """The client's answer to the therapist's first offer never arrives (its socket carried it
    just as it dropped, say). Neither side is told anything, so the pages must notice by
    themselves that the connection never came up, and build it afresh."""
    dropped: list[str] = []

    def to_therapist(message: str | bytes) -> list[str | bytes]:
        data = json.loads(message)
        description = (data.get("data") or {}).get("description") or {}
        if data.get("type") == "signal" and description.get("type") == "answer" and not dropped:
            dropped.append(data["from"])
            return []
        return [message]

    therapist, client = await call_with_therapist_socket_through(browser, site, to_therapist)
    for page in (therapist, client):
        await wait_stat_above(page, FRAMES, 0, timeout_ms=45_000)
        await media_flowing(page)
    assert len(dropped) == 1
    # One of the two (the impolite one) started afresh; the other followed.
    assert await stat(therapist, "rebuilds") + await stat(client, "rebuilds") >= 1


async def call_with_therapist_socket_through(
    browser: Browser, site: Site, to_therapist: Callable[[str | bytes], list[str | bytes]]
) -> tuple[Page, Page]:
    """A therapist and an admitted client; every message from the server to the therapist's
    page goes through `to_therapist`, which returns what to pass on instead (maybe nothing)."""

    def route(page_side: WebSocketRoute) -> None:
        server = page_side.connect_to_server()

        def from_server(message: str | bytes) -> None:
            for passed in to_therapist(message):
                page_side.send(passed)

        server.on_message(from_server)

    context = await browser.new_context()
    await context.route_web_socket(re.compile(r"/ws$"), route)
    therapist = await context.new_page()
    therapist.set_default_timeout(10_000)
    await therapist.goto(site.link("r", Role.THERAPIST, "Dr Sam"))
    client = await open_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await join(therapist)
    await expect(therapist.locator("#screen-call")).to_be_visible()
    await join(client)
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator("#screen-call")).to_be_visible()
    return therapist, client
