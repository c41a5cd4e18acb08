"""The link token leaves the address bar and lives in the tab: a reload resumes, a bare
/join asks for the link again."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from signaling.core.model import Role
from tests.browser.conftest import Site, in_call, open_page, screenshot
from tests.browser.pages import chat_reaches, join

pytestmark = [pytest.mark.browser, pytest.mark.network]


async def test_the_token_leaves_the_address_bar_once_read(browser: Browser, site: Site) -> None:
    link = site.link("r", Role.CLIENT, "Alex")
    token = link.split("#", 1)[1]
    page = await open_page(browser, link)
    await expect(page.locator("#screen-prejoin")).to_be_visible()
    assert page.url == f"{site.base}/join"
    assert await page.evaluate("location.hash") == ""
    assert await page.evaluate("sessionStorage.getItem('sessionroom.token')") == token
    await join(page)
    await expect(page.locator("#screen-waiting")).to_be_visible()
    assert page.url == f"{site.base}/join"
    # The entry the link made in history was replaced, not kept behind the clean one: back
    # is the blank tab it was opened in, forward the clean /join.
    await page.go_back()
    assert page.url == "about:blank"
    await page.go_forward()
    assert page.url == f"{site.base}/join"


async def test_a_reload_in_the_same_tab_resumes_into_the_call(browser: Browser, site: Site) -> None:
    therapist, client = await in_call(browser, site)
    client_id = await client.evaluate("document.body.dataset.participant")
    first_resume = await client.evaluate("sessionStorage.getItem('sessionroom.resume')")
    assert first_resume and first_resume.startswith(client_id + ".")
    await client.reload()
    assert client.url == f"{site.base}/join"
    await join(client)
    await expect(client.locator("#screen-call")).to_be_visible()
    assert await client.evaluate("document.body.dataset.participant") == client_id
    # The resume secret rotated.
    resume = await client.evaluate("sessionStorage.getItem('sessionroom.resume')")
    assert resume != first_resume and resume.startswith(client_id + ".")
    await expect(therapist.locator(".peer")).to_have_count(1)
    await expect(therapist.locator(".lobby-item")).to_have_count(0)
    await chat_reaches(client, therapist, "back after a reload")


async def test_join_without_the_link_asks_for_it_again(browser: Browser, site: Site) -> None:
    page = await open_page(browser, f"{site.base}/join")
    heading = page.get_by_role("heading", name="Please open the link from your message again.")
    await expect(heading).to_be_visible()
    await expect(page.locator("#message-actions button")).to_have_count(0)
    for width in (320, 375, 1280):
        await page.set_viewport_size({"width": width, "height": 640})
        await screenshot(page, f"15-no-link-{width}")
