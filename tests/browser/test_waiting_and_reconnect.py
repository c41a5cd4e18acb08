"""Deny with a message; the server dropping a socket mid-call; a family session grid."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from signaling.appkeys import CONNECTIONS
from signaling.core.model import Role, RoomSettings
from signaling.ws import Connection
from tests.browser.conftest import Site, in_call, open_page, screenshot
from tests.browser.pages import (
    FRAMES,
    chat_reaches,
    join,
    media_flowing,
    stat,
    video_advancing,
    wait_stat_above,
)

pytestmark = [pytest.mark.browser, pytest.mark.network]


async def test_deny_with_a_message(browser: Browser, site: Site) -> None:
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    client = await open_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await join(therapist)
    await join(client)
    item = therapist.locator(".lobby-item").filter(has_text="Alex")
    await item.get_by_role("button", name="Deny Alex").click()
    await item.get_by_label("Message to them (optional)").fill("Please book a new time.")
    await item.get_by_role("button", name="Deny entry").click()
    await expect(client.get_by_role("heading", name="You were not let in")).to_be_visible()
    await expect(client.locator("#message-text")).to_have_text("Please book a new time.")
    await expect(therapist.locator(".lobby-item")).to_have_count(0)
    await screenshot(client, "7-denied")
    # The denied page's socket is closed for good: it does not reconnect into the lobby.
    await asyncio.sleep(1.5)
    await expect(therapist.locator(".lobby-item")).to_have_count(0)


async def test_server_drops_the_socket_mid_call(browser: Browser, site: Site) -> None:
    therapist, client = await in_call(browser, site)
    await media_flowing(client)
    client_id = await client.evaluate("document.body.dataset.participant")

    connections = site.app[CONNECTIONS]
    [conn] = [
        c
        for c in connections
        if isinstance(c, Connection) and c.session and c.session.participant_id == client_id
    ]
    frames_before = await stat(client, FRAMES)
    await conn.ws.close()  # the server ends the client's socket; the peer connection stays

    await expect(client.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    await screenshot(client, "8-reconnecting")
    # Media kept flowing while signalling was away...
    await video_advancing(client)
    assert await stat(client, FRAMES) > frames_before
    # ...and the page resumed in the call, not in the waiting room, with the same id.
    await expect(client.locator("#connection")).to_have_attribute("data-state", "connected")
    await expect(client.locator("#screen-call")).to_be_visible()
    assert await client.evaluate("document.body.dataset.participant") == client_id
    await expect(therapist.locator(".peer")).to_have_count(1)
    # Signalling works again: chat goes through.
    await chat_reaches(client, therapist, "back again")


async def test_family_session_shows_everyone_in_a_grid(browser: Browser, site: Site) -> None:
    settings = RoomSettings(max_clients=2)
    therapist = await open_page(browser, site.link("fam", Role.THERAPIST, "Dr Sam", settings))
    parent = await open_page(browser, site.link("fam", Role.CLIENT, "Parent", settings))
    teen = await open_page(browser, site.link("fam", Role.CLIENT, "Teen", settings))
    await join(therapist)
    for page, name in ((parent, "Parent"), (teen, "Teen")):
        await join(page)
        await therapist.get_by_role("button", name=f"Admit {name}").click()
        await expect(page.locator("#screen-call")).to_be_visible()
    for page in (therapist, parent, teen):
        await expect(page.locator(".peer")).to_have_count(2)
    for page in (therapist, parent, teen):
        for i in range(2):
            await wait_stat_above(page, FRAMES, 5, nth=i)
    await screenshot(therapist, "9-family-grid")


async def test_leaving_from_the_waiting_room(browser: Browser, site: Site) -> None:
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    client = await open_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await join(therapist)
    await join(client)
    await expect(therapist.locator(".lobby-item")).to_have_count(1)
    await client.get_by_role("button", name="Leave").click()
    await expect(client.get_by_role("heading", name="You have left the session")).to_be_visible()
    await expect(therapist.locator(".lobby-item")).to_have_count(0)
    # No dead end: the person can come back with the same link.
    await client.get_by_role("button", name="Join again").click()
    await join(client)
    await expect(client.locator("#screen-waiting")).to_be_visible()
    await expect(therapist.locator(".lobby-item")).to_have_count(1)


async def test_link_open_elsewhere_offers_to_join_here_instead(
    browser: Browser, site: Site
) -> None:
    therapist, first = await in_call(browser, site)
    first_id = await first.evaluate("document.body.dataset.participant")
    # Exactly the client's own link, opened in another browser.
    link = await first.evaluate("sessionStorage.getItem('sessionroom.token')")
    second = await open_page(browser, f"{site.base}/join#{link}")
    await join(second)
    heading = second.get_by_role("heading", name="This link is already open")
    await expect(heading).to_be_visible()
    await expect(therapist.get_by_role("alert")).to_contain_text("second device")
    for width in (320, 375, 1280):
        await second.set_viewport_size({"width": width, "height": 720})
        await screenshot(second, f"14-link-open-elsewhere-{width}")
    await second.get_by_role("button", name="Join here instead").click()
    await join(second)
    await expect(second.locator("#screen-waiting")).to_be_visible()
    second_id = await second.evaluate("document.body.dataset.participant")
    assert second_id != first_id
    item = therapist.locator(".lobby-item").filter(has_text="Alex")
    await expect(item).to_contain_text("Joining from a new device")
    for width in (320, 375, 1280):
        await therapist.set_viewport_size({"width": width, "height": 900})
        await screenshot(therapist, f"14-lobby-new-device-{width}")
    # The first window is untouched until the therapist admits the new device...
    await expect(first.locator("#screen-call")).to_be_visible()
    await therapist.get_by_role("button", name="Admit Alex").click()
    # ...which replaces the old place: the first window is told, the new one is in the call.
    await expect(first.get_by_role("heading", name="Continued elsewhere")).to_be_visible()
    await expect(second.locator("#screen-call")).to_be_visible()
    await expect(therapist.locator(".peer")).to_have_count(1)
    await chat_reaches(second, therapist, "here now")
