"""Headers, where the token goes (nowhere), and no dead ends when devices fail."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from signaling.core.model import Role
from tests.browser.conftest import Site, in_call, open_page, screenshot
from tests.browser.pages import AUDIO, FRAMES, chat_reaches, join, stat, wait_stat_above

pytestmark = [pytest.mark.browser, pytest.mark.network]

REFUSE_DEVICES = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Permission denied', 'NotAllowedError'));
"""


async def test_security_headers(site: Site) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/join", "/static/js/app.js", "/static/styles.css"):
            async with http.get(site.base + path) as resp:
                assert resp.status == 200, path
                csp = resp.headers["Content-Security-Policy"]
                assert "script-src 'self'" in csp and "unsafe-inline" not in csp
                assert "default-src 'none'" in csp
                assert resp.headers["Referrer-Policy"] == "no-referrer"
                assert "camera=(self)" in resp.headers["Permissions-Policy"]
                assert "microphone=(self)" in resp.headers["Permissions-Policy"]
                assert resp.headers["X-Content-Type-Options"] == "nosniff"
        async with http.get(site.base + "/static/js/app.js") as resp:
            assert resp.content_type in ("application/javascript", "text/javascript")
        async with http.get(site.base + "/static/../signaling/app.py") as resp:
            assert resp.status == 404
        async with http.get(site.base + "/join") as resp:
            page = await resp.text()
        assert "<script>" not in page and " on" + "click=" not in page


async def test_the_token_stays_in_the_page(browser: Browser, site: Site) -> None:
    link = site.link("r", Role.CLIENT, "Alex")
    token = link.split("#", 1)[1]
    seen: list[str] = []
    violations: list[str] = []
    context = await browser.new_context()
    context.on("request", lambda r: seen.append(r.url + " " + str(r.headers.get("referer"))))
    page = await context.new_page()
    page.on("websocket", lambda ws: seen.append(ws.url))
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    await page.goto(link)
    await join(page)
    await expect(page.locator("#screen-waiting")).to_be_visible()
    assert seen and all(token not in url for url in seen)
    assert any("/ws" in url for url in seen)
    # Nothing in localStorage; this tab's sessionStorage holds the link and the resume token
    # (a reload resumes), and the address bar no longer shows the token.
    storage = await page.evaluate(
        "() => JSON.stringify([Object.keys(localStorage), Object.keys(sessionStorage).sort()])"
    )
    assert storage == '[[],["sessionroom.resume","sessionroom.token"]]'
    assert token not in page.url
    assert violations == []


async def test_refused_devices_offer_audio_or_chat_only(browser: Browser, site: Site) -> None:
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    await join(therapist)
    context = await browser.new_context()
    await context.add_init_script(REFUSE_DEVICES)
    client = await context.new_page()
    await client.goto(site.link("r", Role.CLIENT, "Alex"))
    problem = client.locator("#device-problem-text")
    await expect(problem).to_contain_text("not letting this page use your camera or microphone")
    await expect(client.get_by_role("button", name="Join", exact=True)).to_be_hidden()
    await expect(client.get_by_role("button", name="Continue with audio only")).to_be_visible()
    await screenshot(client, "12-devices-refused")
    await client.get_by_role("button", name="Continue with chat only").click()
    await expect(client.locator("#screen-waiting")).to_be_visible()
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator("#screen-call")).to_be_visible()
    # Chat-only: no media from the client, but they can still see and hear the therapist.
    await wait_stat_above(client, FRAMES, 5)
    await expect(therapist.locator(".peer .peer-muted")).to_be_visible()
    await expect(therapist.locator(".peer .peer-off")).to_be_visible()
    await chat_reaches(client, therapist, "I can only type today")


async def test_audio_only_stops_video_both_ways(browser: Browser, site: Site) -> None:
    therapist, client = await in_call(browser, site)
    await wait_stat_above(therapist, FRAMES, 5)
    await wait_stat_above(client, FRAMES, 5)
    await client.get_by_role("button", name="Audio only").click()
    await expect(client.get_by_role("button", name="Audio only")).to_have_attribute(
        "aria-pressed", "true"
    )
    await expect(client.locator(".peer .peer-off")).to_have_text("Video paused (audio only)")
    await asyncio.sleep(1.5)  # let what was in flight arrive
    frames = (await stat(therapist, FRAMES), await stat(client, FRAMES))
    energy = await stat(client, AUDIO)
    await asyncio.sleep(2.5)
    assert await stat(therapist, FRAMES) == frames[0], "client still sends video"
    assert await stat(client, FRAMES) == frames[1], "therapist still sends video"
    assert await stat(client, AUDIO) > energy, "audio stopped too"
    await client.get_by_role("button", name="Audio only").click()
    await wait_stat_above(client, FRAMES, frames[1])


@pytest.mark.parametrize(
    ("fragment", "heading"),
    [
        ("", "Please open the link from your message again."),
        ("#garbage", "This link is incomplete"),
    ],
)
async def test_broken_links_explain_themselves(
    browser: Browser, site: Site, fragment: str, heading: str
) -> None:
    page = await open_page(browser, f"{site.base}/join{fragment}")
    await expect(page.get_by_role("heading", name=heading)).to_be_visible()


async def test_expired_link_says_so(browser: Browser, site: Site) -> None:
    import time

    from tests.support import mint

    token = mint(site.keys, "r", Role.CLIENT, "Alex", not_before=time.time() - 7200, valid_for=60)
    page = await open_page(browser, f"{site.base}/join#{token}")
    await join(page)
    await expect(page.get_by_role("heading", name="This link has expired")).to_be_visible()
    await screenshot(page, "13-expired-link")


async def test_therapist_without_devices_still_sees_the_client(
    browser: Browser, site: Site
) -> None:
    context = await browser.new_context()
    await context.add_init_script(REFUSE_DEVICES)
    therapist = await context.new_page()
    await therapist.goto(site.link("r", Role.THERAPIST, "Dr Sam"))
    await therapist.get_by_role("button", name="Continue with chat only").click()
    await expect(therapist.locator("#screen-call")).to_be_visible()
    client = await open_page(browser, site.link("r", Role.CLIENT, "Alex"))
    await join(client)
    await therapist.get_by_role("button", name="Admit Alex").click()
    # The therapist sends nothing, yet the offer asks for the client's audio and video.
    await wait_stat_above(therapist, FRAMES, 5)
    await wait_stat_above(therapist, AUDIO, 0)
    await expect(client.locator(".peer .peer-off")).to_be_visible()
