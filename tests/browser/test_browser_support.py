"""A browser that cannot make calls (no RTCPeerConnection, no getUserMedia) is told so as
the page loads, in plain words that name the browsers that work, before anything is asked of
it: no camera prompt, no connection to the server, no Join button. A chat-only link needs
none of that and still joins; a page on plain http is told what is really wrong."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from signaling.core.model import Permission, Role
from tests.browser.chromium import CHROMIUM_ARGS
from tests.browser.conftest import ARTIFACTS, AXE, Site, open_page, screenshot
from tests.browser.firefox import Firefox
from tests.browser.pages import AUDIO, FRAMES, chat_reaches, join, wait_stat_above
from tests.browser.test_accessibility import audit
from tests.support import mint

pytestmark = [pytest.mark.browser, pytest.mark.network]

NO_WEBRTC = "delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;"
NO_CAMERA = "delete MediaDevices.prototype.getUserMedia;"
# Counts camera and microphone requests, where the browser has them.
COUNT_CAMERA = """
window.cameraAsked = 0;
if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = (constraints) => {
        window.cameraAsked += 1;
        return original(constraints);
    };
}
"""
TITLE = "Please open your link in another browser"
OPEN_ELSEWHERE = (
    "open the same link from your message in a current version of one of these "
    "browsers, on this device or another one:"
)
BROWSERS = ["Chrome", "Edge", "Firefox", "Safari"]
UNTOUCHED = "Your camera and microphone have not been used."
CHAT_INSTEAD = (
    "Or continue here with chat only: you will see and hear your therapist and can type to them."
)
WIDTHS = (320, 375, 1280)


class Watched:
    """A page opened with scripts run before its own, and the WebSockets it opened."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.sockets: list[str] = []


async def watched(browser: Browser, url: str, *scripts: str) -> Watched:
    context = await browser.new_context()
    await context.add_init_script(path=str(AXE))
    for script in scripts:
        await context.add_init_script(script=script)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    seen = Watched(page)
    page.on("websocket", lambda ws: seen.sockets.append(ws.url))
    await page.goto(url)
    return seen


async def told_to_use_another_browser(
    seen: Watched,
    missing: str,
    why: str = "This browser cannot make video calls",
    note: str = UNTOUCHED,
) -> None:
    """The message is on screen and has the focus; nothing was asked of the browser."""
    page = seen.page
    heading = page.get_by_role("heading", name=TITLE, level=1)
    await expect(heading).to_be_visible()
    await expect(heading).to_be_focused()
    text = page.locator("#message-text")
    await expect(text).to_be_visible()
    await expect(text).to_contain_text(why)
    await expect(text).to_contain_text(OPEN_ELSEWHERE)
    browsers = page.get_by_role("list").get_by_role("listitem")
    await expect(browsers).to_have_text(BROWSERS)
    await expect(page.locator("#message-note")).to_have_text(note)
    await expect(page.locator("body")).to_have_attribute("data-missing", missing)
    # The page stopped there: no way into a call it cannot make, no camera, no socket.
    await expect(page.get_by_role("button", name="Join", exact=True)).to_have_count(0)
    await expect(page.locator("#screen-prejoin")).to_be_hidden()
    assert await page.evaluate("window.cameraAsked ?? 0") == 0
    assert seen.sockets == []
    await audit(page, f"no {missing}")


async def fits(page: Page, name: str) -> None:
    """At each width, nothing wider than the screen; a screenshot of each."""
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 640})
        scroll = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width, f"page is {scroll}px wide at a {width}px viewport"
        await screenshot(page, f"{name}-{width}")


async def test_without_webrtc_the_page_says_which_browsers_work(
    browser: Browser, site: Site
) -> None:
    seen = await watched(browser, site.link("r", Role.CLIENT, "Alex"), NO_WEBRTC, COUNT_CAMERA)
    await told_to_use_another_browser(seen, "RTCPeerConnection")
    await fits(seen.page, "30-browser-cannot-call")


async def test_without_camera_access_the_page_says_which_browsers_work(
    browser: Browser, site: Site
) -> None:
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    await join(therapist)
    seen = await watched(browser, site.link("r", Role.CLIENT, "Alex"), NO_CAMERA, COUNT_CAMERA)
    await told_to_use_another_browser(
        seen,
        "getUserMedia",
        why="This browser cannot use a camera or microphone",
        note=f"{CHAT_INSTEAD} {UNTOUCHED}",
    )
    # No dead end: the call can still be seen and heard, and chat typed.
    page = seen.page
    await page.set_viewport_size({"width": 375, "height": 640})
    await screenshot(page, "33-no-camera-375")
    await page.get_by_role("button", name="Continue with chat only").click()
    await expect(page.locator("#screen-waiting")).to_be_visible()
    await expect(page.locator("#waiting-preview-wrap")).to_be_hidden()
    await screenshot(page, "34-no-camera-waiting-375")
    assert await page.evaluate("window.cameraAsked ?? 0") == 0
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(page.locator("#screen-call")).to_be_visible()
    await wait_stat_above(page, FRAMES, 5)
    await wait_stat_above(page, AUDIO, 0)
    for control in ("Mute", "Camera off", "Audio only"):
        await expect(page.get_by_role("button", name=control)).to_have_count(0)
    await expect(page.locator("#self-view")).to_be_hidden()
    await screenshot(page, "35-no-camera-in-call-375")
    await chat_reaches(page, therapist, "My camera does not work here")


async def test_a_chat_only_link_needs_no_webrtc(browser: Browser, site: Site) -> None:
    chat_only = frozenset({Permission.CHAT, Permission.CONSENT})
    token = mint(site.keys, "r", Role.CLIENT, "Alex", permissions=chat_only)
    seen = await watched(browser, f"{site.base}/join#{token}", NO_WEBRTC, NO_CAMERA)
    page = seen.page
    await expect(page.get_by_role("heading", name="Join your session")).to_be_visible()
    await page.get_by_role("button", name="Join", exact=True).click()
    await expect(page.locator("#screen-waiting")).to_be_visible()
    await expect(page.get_by_role("heading", name=TITLE)).to_have_count(0)


async def test_on_plain_http_the_page_asks_for_a_secure_link(chromium: str, site: Site) -> None:
    """Served under a name that is not localhost, over http: every browser hides the camera,
    so naming other browsers would not help."""
    rules = "--host-resolver-rules=MAP sessionroom.test 127.0.0.1"
    async with async_playwright() as p:
        insecure = await p.chromium.launch(executable_path=chromium, args=[*CHROMIUM_ARGS, rules])
        try:
            link = site.link("r", Role.CLIENT, "Alex").replace("127.0.0.1", "sessionroom.test")
            seen = await watched(insecure, link, COUNT_CAMERA)
            page = seen.page
            heading = page.get_by_role("heading", name="This link needs a secure connection")
            await expect(heading).to_be_visible()
            await expect(page.locator("#message-text")).to_contain_text(
                "a link that starts with https"
            )
            await expect(page.locator("#message-list")).to_be_hidden()
            await expect(page.locator("#message-note")).to_have_text(f"{CHAT_INSTEAD} {UNTOUCHED}")
            await expect(page.locator("body")).to_have_attribute("data-missing", "getUserMedia")
            await expect(page.get_by_role("button", name="Continue with chat only")).to_be_visible()
            await expect(page.get_by_role("button", name="Join", exact=True)).to_have_count(0)
            assert seen.sockets == []
            await page.set_viewport_size({"width": 375, "height": 640})
            await screenshot(page, "31-needs-https-375")
        finally:
            await insecure.close()


async def test_firefox_without_webrtc_is_told_too(firefox: Firefox, site: Site) -> None:
    page = await firefox.new_page(
        site.link("r", Role.CLIENT, "Alex"), name="client", preload=(NO_WEBRTC, COUNT_CAMERA)
    )
    await page.wait_for(
        "() => document.body.dataset.missing", what="the page's check of what is missing"
    )
    shown: dict[str, Any] = await page.evaluate(
        """() => ({
            title: document.getElementById('message-title').textContent,
            text: document.getElementById('message-text').textContent,
            browsers: [...document.querySelectorAll('#message-list li')]
                .filter((li) => li.getClientRects().length > 0).map((li) => li.textContent),
            note: document.getElementById('message-note').textContent,
            focused: document.activeElement.id,
            missing: document.body.dataset.missing,
            prejoin: !document.getElementById('screen-prejoin').hidden,
            cameraAsked: window.cameraAsked,
        })"""
    )
    assert shown["title"] == TITLE, shown
    assert OPEN_ELSEWHERE in shown["text"], shown
    assert shown["browsers"] == BROWSERS and shown["note"] == UNTOUCHED, shown
    assert shown["focused"] == "message-title", shown
    assert shown["missing"] == "RTCPeerConnection", shown
    assert shown["prejoin"] is False and shown["cameraAsked"] == 0, shown
    for width in WIDTHS:
        await page.set_viewport(width, 640)
        scroll = await page.evaluate("() => document.documentElement.scrollWidth")
        assert scroll <= width, f"page is {scroll}px wide at a {width}px viewport"
        shot = ARTIFACTS / "screenshots" / f"30-browser-cannot-call-firefox-{width}.png"
        await page.screenshot(shot)
