"""Accessibility: an axe-core audit of each screen, and a keyboard-only session."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from signaling.core.model import Role, RoomSettings
from tests.browser.conftest import AXE, Site, in_call, open_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.network]


async def audit(page: Page, screen: str) -> None:
    """No serious or critical axe-core violation on what is on screen now."""
    result: dict[str, Any] = await page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations']})"
    )
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{screen}: " + "; ".join(bad)


async def audited_page(browser: Browser, url: str) -> Page:
    if not AXE.is_file():
        pytest.fail(f"axe-core is missing at {AXE}: run scripts/test, which installs it.")
    context = await browser.new_context()
    # An init script is injected by the browser itself, so the page's strict CSP allows it.
    await context.add_init_script(path=str(AXE))
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(url)
    return page


async def test_every_screen_passes_axe(browser: Browser, site: Site) -> None:
    therapist = await audited_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    client = await audited_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await expect(client.locator("#screen-prejoin")).to_be_visible()
    await audit(client, "pre-join")
    await client.get_by_role("button", name="Join", exact=True).click()
    await therapist.get_by_role("button", name="Join", exact=True).click()
    await expect(client.locator("#screen-waiting")).to_be_visible()
    await therapist.locator("#notice-text").fill("Running 5 minutes late")
    await therapist.get_by_role("button", name="Post notice").click()
    await expect(client.locator("#lobby-notice-text")).to_have_text("Running 5 minutes late")
    await audit(client, "waiting")
    await audit(therapist, "therapist with someone waiting")
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator(".peer")).to_have_count(1)
    await client.get_by_role("button", name="Chat").click()
    await audit(client, "in call")
    await audit(therapist, "therapist in call")


async def tab_to(page: Page, target: Locator, limit: int = 40) -> None:
    """Press Tab until `target` has focus, and check that the focus can be seen."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await target.evaluate("el => el === document.activeElement"):
            outline = await target.evaluate(
                "el => { const s = getComputedStyle(el); return [s.outlineStyle, s.boxShadow]; }"
            )
            assert outline[0] != "none" or outline[1] != "none", "focus is not visible"
            return
    raise AssertionError(f"could not reach {target} with the Tab key")


async def test_keyboard_only_join_admit_and_leave(browser: Browser, site: Site) -> None:
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    client = await open_page(browser, site.link("r", Role.CLIENT, "Alex"))
    for page in (therapist, client):
        await expect(page.locator("#screen-prejoin")).to_be_visible()
        await tab_to(page, page.get_by_role("button", name="Join", exact=True))
        await page.keyboard.press("Enter")
    await expect(client.locator("#screen-waiting")).to_be_visible()
    await expect(therapist.locator(".lobby-item")).to_have_count(1)
    await tab_to(therapist, therapist.get_by_role("button", name="Admit Alex"))
    await screenshot(therapist, "10-keyboard-focus-admit")
    await therapist.keyboard.press("Enter")
    await expect(client.locator("#screen-call")).to_be_visible()
    await tab_to(client, client.get_by_role("button", name="Mute"))
    await client.keyboard.press("Space")
    await expect(client.get_by_role("button", name="Unmute")).to_be_visible()
    await tab_to(client, client.get_by_role("button", name="Leave"))
    await client.keyboard.press("Enter")
    await expect(client.get_by_role("heading", name="You have left the session")).to_be_visible()


async def test_state_changes_are_announced(browser: Browser, site: Site) -> None:
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    client = await open_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await therapist.get_by_role("button", name="Join", exact=True).click()
    await client.get_by_role("button", name="Join", exact=True).click()
    live = therapist.locator("#announce")
    assert await live.get_attribute("aria-live") == "polite"
    await expect(live).to_have_text("Alex is waiting.")
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator("#announce")).to_have_text("You have been let in.")
    await expect(live).to_have_text("Alex joined.")
    await client.get_by_role("button", name="Chat").click()
    await client.locator("#chat-input").fill("hello")
    await client.keyboard.press("Enter")
    await expect(live).to_have_text("New message from Alex.")


async def test_usable_at_320_pixels(browser: Browser, site: Site) -> None:
    size = {"width": 320, "height": 640}
    therapist, client = await in_call(browser, site, viewport=size)
    await expect(client.locator(".peer")).to_have_count(1)
    for page in (therapist, client):
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, f"page is {width}px wide at a 320px viewport"
        for name in ("Mute", "Leave", "Chat"):
            box = await page.get_by_role("button", name=name, exact=True).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320, name
    await screenshot(client, "11-call-320px")


async def test_lobby_updates_keep_focus_and_a_half_typed_message(
    browser: Browser, site: Site
) -> None:
    settings = RoomSettings(max_clients=2)
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam", settings))
    first = await open_page(browser, site.link("r", Role.CLIENT, "Alex", settings))
    await therapist.get_by_role("button", name="Join", exact=True).click()
    await first.get_by_role("button", name="Join", exact=True).click()
    item = therapist.locator(".lobby-item").filter(has_text="Alex")
    await item.get_by_role("button", name="Deny Alex").click()
    note = item.get_by_label("Message to them (optional)")
    await note.type("Please book ")
    # Someone else arrives: the list changes under the therapist's hands.
    second = await open_page(browser, site.link("r", Role.CLIENT, "Sam", settings))
    await second.get_by_role("button", name="Join", exact=True).click()
    await expect(therapist.locator(".lobby-item")).to_have_count(2)
    await expect(note).to_be_focused()
    await therapist.keyboard.type("again.")
    await expect(note).to_have_value("Please book again.")
    await therapist.keyboard.press("Enter")
    await expect(first.locator("#message-text")).to_have_text("Please book again.")
    # The denied person's row is gone; focus moved on to the next person waiting.
    await expect(therapist.get_by_role("button", name="Admit Sam")).to_be_focused()
