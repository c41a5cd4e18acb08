"""A denial sticks: a reload of the denied page is told again, not sent back to wait; the
therapist sees who was turned away and can allow them again."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from signaling.core.model import Role
from tests.browser.conftest import Site, screenshot
from tests.browser.pages import join
from tests.browser.test_accessibility import audit, audited_page

pytestmark = [pytest.mark.browser, pytest.mark.network]

WIDTHS = (320, 375, 1280)


async def _deny(therapist: Page, client: Page, message: str) -> None:
    item = therapist.locator(".lobby-item").filter(has_text="Alex")
    await item.get_by_role("button", name="Deny Alex").click()
    if message:
        await item.get_by_label("Message to them (optional)").fill(message)
    await item.get_by_role("button", name="Deny entry").click()
    await expect(client.get_by_role("heading", name="You were not let in")).to_be_visible()


async def _reload_and_join(page: Page) -> None:
    """Reload the page and join again as the page offers (the Join button, if it shows)."""
    await page.reload()
    # The device check with its Join button, or (should a reload go straight back in)
    # already the waiting room or the denial.
    await page.wait_for_function(
        """() => {
          const shown = (id) => !document.getElementById(id).hidden;
          return (shown("screen-prejoin") && !document.getElementById("join").disabled)
            || shown("screen-waiting")
            || document.getElementById("message-title").textContent === "You were not let in";
        }"""
    )
    if await page.locator("#screen-prejoin").is_visible():
        await page.get_by_role("button", name="Join", exact=True).click()


async def _fits(page: Page, width: int, buttons: tuple[str, ...] = ()) -> None:
    """Nothing wider than the viewport; these buttons inside it."""
    scroll = await page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"page is {scroll}px wide at a {width}px viewport"
    for name in buttons:
        box = await page.get_by_role("button", name=name, exact=True).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, name


async def test_a_denied_client_reloads_and_is_told_again(browser: Browser, site: Site) -> None:
    therapist = await audited_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    client = await audited_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await join(therapist)
    await join(client)
    await _deny(therapist, client, "Please book a new time.")

    await _reload_and_join(client)
    await expect(client.get_by_role("heading", name="You were not let in")).to_be_visible()
    await expect(client.locator("#message-text")).to_have_text("Please book a new time.")
    # Not the waiting room, and no stale "let you in shortly".
    await expect(client.locator("#screen-waiting")).to_be_hidden()
    await expect(client.get_by_text("let you in shortly")).to_be_hidden()
    await expect(therapist.locator(".lobby-item")).to_have_count(0)

    # The therapist sees who was turned away, and when; never the message.
    denied = therapist.locator(".denied-item")
    await expect(denied).to_have_count(1)
    await expect(denied).to_contain_text("Alex")
    await expect(denied).to_contain_text("Not let in at")
    await expect(denied).not_to_contain_text("Please book a new time.")
    await expect(therapist.get_by_role("button", name="Allow again: Alex")).to_be_visible()
    await audit(therapist, "therapist with someone turned away")
    await audit(client, "denied after a reload")
    for width in WIDTHS:
        await client.set_viewport_size({"width": width, "height": 720})
        await _fits(client, width)
        await expect(client.get_by_role("heading", name="You were not let in")).to_be_in_viewport()
        await screenshot(client, f"denied-client-{width}px")
        await therapist.set_viewport_size({"width": width, "height": 720})
        await _fits(therapist, width, ("Leave",))
        allow = therapist.get_by_role("button", name="Allow again: Alex")
        await allow.scroll_into_view_if_needed()
        box = await allow.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
        await screenshot(therapist, f"denied-therapist-panel-{width}px")


async def test_allow_again_from_the_keyboard_lets_them_wait_again(
    browser: Browser, site: Site
) -> None:
    therapist = await audited_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    client = await audited_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await join(therapist)
    await join(client)
    await _deny(therapist, client, "")
    await expect(client.locator("#message-text")).to_contain_text("could not let you in")

    allow = therapist.get_by_role("button", name="Allow again: Alex")
    await allow.focus()
    await therapist.keyboard.press("Enter")
    await expect(therapist.locator(".denied-item")).to_have_count(0)
    await expect(therapist.locator("#denied-section")).to_be_hidden()
    # Focus is not lost with the row: it goes to the panel's heading.
    await expect(therapist.locator("#lobby-title")).to_be_focused()
    await expect(therapist.locator("#announce")).to_contain_text("Alex may join again")

    # The client opens the link again: back in the waiting room, and the therapist sees it.
    await _reload_and_join(client)
    await expect(client.locator("#screen-waiting")).to_be_visible()
    await expect(therapist.locator(".lobby-item").filter(has_text="Alex")).to_have_count(1)
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator("#screen-call")).to_be_visible()
