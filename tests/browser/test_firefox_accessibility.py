"""Accessibility in Firefox: an axe-core audit of the screens a client sees there (the device
check, the waiting room with a notice, the call with the chat open), beside a therapist in
Chromium. Firefox computes names and roles its own way, so a page that passes in Chromium
can still fail here."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from signaling.core.model import Role
from tests.browser import firefox_pages as ff
from tests.browser.conftest import AXE, Site, open_page
from tests.browser.firefox import Firefox
from tests.browser.pages import join

pytestmark = [pytest.mark.browser, pytest.mark.network]

CAMERA_READY = "() => document.getElementById('preview').readyState >= 2"


async def test_the_client_s_screens_pass_axe_in_firefox(
    browser: Browser, firefox: Firefox, site: Site
) -> None:
    if not AXE.is_file():
        pytest.fail(f"axe-core is missing at {AXE}: run scripts/test, which installs it.")
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    await join(therapist)
    client = await ff.open_room(firefox, site, Role.CLIENT, "Alex", axe=True)

    await ff.shown(client, "screen-prejoin")
    await client.wait_for(CAMERA_READY, what="the camera preview playing")
    assert await ff.axe_violations(client) == [], "device check"

    await ff.join(client)
    await ff.shown(client, "screen-waiting")
    await therapist.locator("#notice-text").fill("Running 5 minutes late")
    await therapist.get_by_role("button", name="Post notice").click()
    await ff.shown(client, "lobby-notice")
    assert await ff.axe_violations(client) == [], "waiting room"

    await therapist.get_by_role("button", name="Admit Alex").click()
    await ff.shown(client, "screen-call")
    await client.wait_for("() => document.querySelectorAll('.peer').length === 1")
    await client.click("button", "Chat")
    await ff.shown(client, "chat-panel")
    assert await ff.axe_violations(client) == [], "in call"
    assert firefox.page_errors == []
