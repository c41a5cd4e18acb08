"""Chat on the page: kept in memory only, said so after a reload, and a message that never
reached someone is marked beside it."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from signaling.app import create_app
from tests.browser.conftest import AiohttpServer, Site, in_call
from tests.browser.pages import chat_reaches
from tests.support import make_keys, make_settings

NOT_KEPT = "Earlier messages are not kept, for privacy."


async def test_a_message_that_never_arrived_is_marked_beside_it(
    browser: Browser, aiohttp_server: AiohttpServer
) -> None:
    settings = make_settings(grace_seconds=2.0, join_timeout_seconds=5.0)
    keys = make_keys()
    site = Site(await aiohttp_server(create_app(settings, keys)), keys, settings)
    therapist, client = await in_call(browser, site)
    await client.context.close()  # Alex's device goes away and never comes back
    await expect(therapist.locator(".peer")).to_have_attribute("data-quality", "reconnecting")
    await therapist.get_by_role("button", name="Chat").click()
    await therapist.locator("#chat-input").fill("Are you still there?")
    await therapist.keyboard.press("Enter")
    sent = therapist.locator("#chat-log li", has_text="Are you still there?")
    await expect(sent).to_contain_text("Not delivered: Alex had left", timeout=8_000)
    await expect(therapist.locator(".chat-undelivered")).to_have_count(1)


@pytest.mark.parametrize("who", ["therapist", "client"])
async def test_after_a_reload_the_chat_says_earlier_messages_are_not_kept(
    browser: Browser, site: Site, who: str
) -> None:
    therapist, client = await in_call(browser, site)
    await chat_reaches(client, therapist, "a private thought")
    page = therapist if who == "therapist" else client
    stored = await page.evaluate("() => JSON.stringify([{...sessionStorage}, {...localStorage}])")
    assert "private thought" not in stored  # never in web storage, which reaches the disk
    await expect(page.locator("#chat-log")).not_to_contain_text(NOT_KEPT)

    await page.reload()
    join = page.get_by_role("button", name="Join", exact=True)
    call = page.locator("#screen-call")
    # Straight back into the call, or (a page that keeps no resume token) the Join button.
    await page.locator("#join:visible, #screen-call:visible").first.wait_for()
    if await join.is_visible():
        await join.click()
    if who == "client":
        # Back in the call with its resume token, or waiting to be admitted again: which
        # one shows first depends on the reload's timing, so wait for either.
        admit = therapist.get_by_role("button", name="Admit Alex")
        async with asyncio.timeout(10):
            while not (await call.is_visible() or await admit.is_visible()):
                await asyncio.sleep(0.05)
        if not await call.is_visible():
            await admit.click()
    await expect(call).to_be_visible()
    await page.get_by_role("button", name="Chat").click()
    log = page.locator("#chat-log")
    await expect(log).to_contain_text(NOT_KEPT)
    await expect(log).not_to_contain_text("private thought")
    await expect(log.locator("li", has_text=NOT_KEPT)).to_have_count(1)
    # Chat goes on as before after the reload (the sender's panel is open already).
    other = client if who == "therapist" else therapist
    await other.locator("#chat-input").fill("still here")
    await other.keyboard.press("Enter")
    await expect(log).to_contain_text("still here")
