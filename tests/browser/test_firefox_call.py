"""Firefox beside Chromium on the real page: a call each way round (the therapist in one
browser, the client in the other), with video frames decoded and audio energy rising on both
sides and chat from Firefox; and a reload in Firefox that resumes into the call."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from signaling.core.model import Role
from tests.browser import firefox_pages as ff
from tests.browser.conftest import ARTIFACTS, Site, open_page
from tests.browser.firefox import Firefox, FirefoxPage
from tests.browser.pages import AUDIO, FRAMES, join, media_flowing

pytestmark = [pytest.mark.browser, pytest.mark.network]

PEER_NAME = "() => document.querySelector('.peer .peer-name')?.textContent || ''"
CONNECTED = "() => document.getElementById('connection').dataset.state === 'connected'"


async def chromium_client_firefox_therapist(
    browser: Browser, firefox: Firefox, site: Site
) -> tuple[FirefoxPage, Page]:
    therapist = await ff.open_room(firefox, site, Role.THERAPIST, "Dr Sam")
    await ff.join(therapist)
    await ff.shown(therapist, "screen-call")
    client = await open_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await join(client)
    await expect(client.locator("#screen-waiting")).to_be_visible()
    await therapist.click("button", "Admit Alex")
    await expect(client.locator("#screen-call")).to_be_visible()
    return therapist, client


async def firefox_client_chromium_therapist(
    browser: Browser, firefox: Firefox, site: Site
) -> tuple[FirefoxPage, Page]:
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    await join(therapist)
    client = await ff.open_room(firefox, site, Role.CLIENT, "Alex")
    await ff.join(client)
    await ff.shown(client, "screen-waiting")
    await therapist.get_by_role("button", name="Admit Alex").click()
    await ff.shown(client, "screen-call")
    return client, therapist


@pytest.mark.parametrize("firefox_role", [Role.CLIENT, Role.THERAPIST], ids=lambda r: r.value)
async def test_chromium_and_firefox_talk(
    browser: Browser, firefox: Firefox, site: Site, firefox_role: Role
) -> None:
    if firefox_role is Role.CLIENT:
        fox, chrome = await firefox_client_chromium_therapist(browser, firefox, site)
        fox_sees, chrome_sees = "Dr Sam", "Alex"
    else:
        fox, chrome = await chromium_client_firefox_therapist(browser, firefox, site)
        fox_sees, chrome_sees = "Alex", "Dr Sam"
    await expect(chrome.locator(".peer .peer-name")).to_have_text(chrome_sees)
    assert await fox.wait_for(PEER_NAME, what="the other person's tile") == fox_sees

    # Sound and pictures both ways: each side decodes the other's video, and hears it.
    await ff.media_flowing(fox)
    await media_flowing(chrome)
    await fox.wait_for(CONNECTED, what="the connection indicator saying connected")
    await expect(chrome.locator("#connection")).to_have_attribute("data-state", "connected")
    await fox.screenshot(ARTIFACTS / "screenshots" / f"32-firefox-{firefox_role.value}-in-call.png")

    # Typed in Firefox, read in Chromium.
    await fox.click("button", "Chat")
    await fox.type("Hello from Firefox")
    await fox.press("Enter")
    await chrome.get_by_role("button", name="Chat (1 new)").click()
    await expect(chrome.locator("#chat-log")).to_contain_text("Hello from Firefox")
    assert firefox.page_errors == []


async def test_a_reload_in_firefox_resumes_into_the_call(
    browser: Browser, firefox: Firefox, site: Site
) -> None:
    client, therapist = await firefox_client_chromium_therapist(browser, firefox, site)
    await ff.media_flowing(client)
    client_id = await ff.body_data(client, "participant")
    before = await client.evaluate("() => sessionStorage.getItem('sessionroom.resume')")
    assert before.startswith(client_id + ".")

    await client.reload()
    await ff.join(client)
    # Back in the call, in the same place: no waiting room, same id, a fresh resume secret.
    await ff.shown(client, "screen-call")
    assert await ff.body_data(client, "participant") == client_id
    after = await client.evaluate("() => sessionStorage.getItem('sessionroom.resume')")
    assert after != before and after.startswith(client_id + ".")
    await expect(therapist.locator(".peer")).to_have_count(1)
    await expect(therapist.locator(".lobby-item")).to_have_count(0)

    # Pictures and sound again, both ways, on the reloaded page's new connection.
    await ff.media_flowing(client)
    await rising(therapist, FRAMES)
    await rising(therapist, AUDIO)
    assert firefox.page_errors == []


async def rising(page: Page, key: str, timeout_ms: float = 30_000) -> None:
    """The remote tile's `key` grows between two of the page's stats samples (a second apart):
    what the connection now carries, whatever an earlier connection counted."""
    await page.wait_for_function(
        """(key) => {
            const now = Number(document.querySelector('.peer')?.dataset[key] || 0);
            const seen = window.risingSeen || (window.risingSeen = {});
            const before = seen[key];
            seen[key] = now;
            return before !== undefined && now > before;
        }""",
        arg=key,
        polling=1100,
        timeout=timeout_ms,
    )
