"""The therapist's "Recordings of this session" panel, in two real browsers: after a short
recording it lists the recording (when, how long, status, who), downloads a file with the
link token in the Authorization header (never in a URL) that plays, and deletes the
recording after an inline confirm, in the call and on the screen after the session. A
client has no panel; an expired link says so plainly; axe finds nothing on the open panel."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
from playwright.async_api import Browser, Dialog, Locator, Page, Request, Route, expect

from signaling.core.model import Role
from tests.browser.conftest import Site, open_page, screenshot
from tests.browser.pages import join
from tests.browser.test_accessibility import audit, audited_page
from tests.browser.test_recording import (
    CONSENT,
    decode,
    everyone_agrees,
    finished,
    leg_connected,
    recording_folders,
    recording_shown,
)

pytestmark = [pytest.mark.browser, pytest.mark.network]

RECORD_SECONDS = 3.0
TITLE = "Recordings of this session"
EXPIRED = (
    "Your link has expired, so recordings cannot be shown here. Your practice can still get them."
)


def panel(page: Page) -> Locator:
    return page.get_by_role("region", name=TITLE)


def fact(item: Locator, term: str) -> Locator:
    """What a recording's item says for `term` ("Status", "Length", "Participants")."""
    return item.locator(f"xpath=.//dt[normalize-space()='{term}']/following-sibling::dd[1]")


async def token_of(page: Page) -> str:
    # The page moves the token from the address bar into its tab's sessionStorage.
    token: str = await page.evaluate("sessionStorage.getItem('sessionroom.token')")
    return token


async def test_the_therapist_lists_downloads_and_deletes_a_recording(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site
    therapist = await audited_page(browser, site.link("r", Role.THERAPIST, "Dr Sam", CONSENT))
    client = await open_page(browser, site.link("r", Role.CLIENT, "Alex", CONSENT))
    token = await token_of(therapist)
    api_calls: list[Request] = []
    urls: list[str] = []

    def seen(req: Request) -> None:
        urls.append(req.url)
        if "/api/" in req.url:
            api_calls.append(req)

    therapist.on("request", seen)
    for page in (therapist, client):
        await join(page)
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator("#screen-call")).to_be_visible()

    # Record about three seconds, both having said yes.
    await everyone_agrees(therapist, client)
    for page in (therapist, client):
        await recording_shown(page)
        await leg_connected(page)

    # The client has no way to the recordings.
    await expect(client.get_by_role("button", name="Recordings", exact=True)).to_have_count(0)
    await expect(panel(client)).to_have_count(0)

    # The therapist opens the panel from the call controls while recording.
    toggle = therapist.get_by_role("button", name="Recordings", exact=True)
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(panel(therapist)).to_be_visible()
    await expect(therapist.locator("#recordings-title")).to_be_focused()
    items = (
        panel(therapist)
        .get_by_role("listitem")
        .filter(has=therapist.get_by_role("heading", level=3))
    )
    await expect(items).to_have_count(1)
    item = items.first
    await expect(fact(item, "Status")).to_have_text("Being recorded now")
    await expect(item.get_by_role("button")).to_have_count(0)  # nothing to download or delete yet

    # Stopped: the list follows by itself until the recording is finished.
    await asyncio.sleep(RECORD_SECONDS)
    await therapist.get_by_role("button", name="Stop recording").click()
    await expect(fact(item, "Status")).to_have_text("Complete")
    manifest = await finished(site)
    length = round(manifest["stopped_at"] - manifest["started_at"])
    assert length >= RECORD_SECONDS
    await expect(fact(item, "Participants")).to_have_text("Dr Sam, Alex")
    await expect(fact(item, "Length")).to_have_text(f"{length} seconds")
    await expect(item.get_by_role("heading", level=3)).to_contain_text("Recording started")
    await expect(item.get_by_role("button", name="Download", exact=False)).to_have_count(2)
    await expect(panel(therapist).locator("#recordings-status")).to_have_text(
        "1 recording of this session."
    )
    await audit(therapist, "recordings panel open in the call")
    await screenshot(therapist, "30-recordings-panel")

    folder = recording_folders(site)[0]
    client_id = await client.evaluate("document.body.dataset.participant")
    [client_file] = [f for f in manifest["files"] if f["participant"] == client_id]

    # Download the client's part: a real file, named after it, that decodes.
    async with therapist.expect_download() as info:
        await item.get_by_role("button", name="Download Alex's part").click()
    download = await info.value
    assert download.suggested_filename == client_file["name"]
    saved = Path(await download.path())
    on_disk = folder / client_file["name"]
    got, kept = await asyncio.gather(
        asyncio.to_thread(saved.read_bytes), asyncio.to_thread(on_disk.read_bytes)
    )
    assert got == kept
    decoded = await asyncio.to_thread(decode, saved)
    assert decoded.kinds == {"audio", "video"}, decoded
    assert decoded.video_frames > 0 and decoded.audio_frames > 0, decoded
    await expect(item).to_contain_text(f"{client_file['name']} is downloaded.")

    # Delete asks first, inside the panel; "Keep it" keeps it.
    delete = item.get_by_role("button", name="Delete recording")
    await delete.click()
    confirm = item.get_by_role("group", name="Delete this recording for good?")
    await expect(confirm).to_be_visible()
    await expect(confirm.get_by_role("button", name="Keep it")).to_be_focused()
    await audit(therapist, "recordings panel asking before a delete")
    await therapist.keyboard.press("Enter")
    await expect(confirm).to_be_hidden()
    await expect(delete).to_be_focused()
    assert recording_folders(site) == [folder]

    # After the session ends the therapist finds the recordings on the screen they see.
    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    therapist.once("dialog", accept)
    await therapist.get_by_role("button", name="End session for everyone").click()
    await expect(therapist.get_by_role("heading", name="The session has ended")).to_be_visible()
    await expect(panel(therapist)).to_be_visible()
    await expect(therapist.get_by_role("button", name="Hide recordings")).to_have_count(0)
    await expect(items).to_have_count(1)
    await audit(therapist, "recordings on the screen after the session")

    await item.get_by_role("button", name="Delete recording").click()
    await confirm.get_by_role("button", name="Yes, delete").click()
    await expect(items).to_have_count(0)
    await expect(panel(therapist).locator("#recordings-status")).to_have_text(
        "There are no recordings of this session."
    )
    await expect(therapist.locator("#announce")).to_contain_text("The recording is deleted.")
    assert recording_folders(site) == []
    await screenshot(therapist, "31-recordings-after-the-session")

    # The token went in the Authorization header of every API call, and in no URL.
    assert api_calls
    assert {r.method for r in api_calls} == {"GET", "DELETE"}
    for req in api_calls:
        assert await req.header_value("authorization") == f"Bearer {token}", req.url
    assert not [u for u in urls if token in u]


async def test_an_expired_link_says_so_and_offers_to_try_again(
    browser: Browser, recording_site: Site
) -> None:
    therapist = await open_page(
        browser, recording_site.link("r", Role.THERAPIST, "Dr Sam", CONSENT)
    )

    async def expired(route: Route) -> None:
        await route.fulfill(
            status=401,
            content_type="application/json",
            body='{"code": "unauthorized", "message": "This link has expired."}',
        )

    await therapist.route("**/api/v1/recordings**", expired)
    await join(therapist)
    await therapist.get_by_role("button", name="Recordings", exact=True).click()
    status = panel(therapist).locator("#recordings-status")
    await expect(status).to_have_text(EXPIRED)
    await expect(status).to_have_attribute("role", "status")
    # Never a dead end: the list can be asked for again, and the panel closed.
    await therapist.unroute("**/api/v1/recordings**")
    await panel(therapist).get_by_role("button", name="Refresh list").click()
    await expect(status).to_have_text("There are no recordings of this session.")
    await panel(therapist).get_by_role("button", name="Hide recordings").click()
    await expect(panel(therapist)).to_be_hidden()
    await expect(therapist.get_by_role("button", name="Recordings", exact=True)).to_be_focused()


async def test_a_recording_being_finished_is_followed_until_its_files_are_ready(
    browser: Browser, recording_site: Site
) -> None:
    # On a small phone, too.
    therapist = await open_page(
        browser,
        recording_site.link("r", Role.THERAPIST, "Dr Sam", CONSENT),
        viewport={"width": 320, "height": 640},
    )
    started = time.time() - 60
    finishing = {
        "id": "rec-20261126-093000-ab12cd",
        "room": "r",
        "session": {"request": "q-1", "room_opened_at": started - 60},
        "status": "recording",
        "participants": [{"id": "p-1", "role": "therapist", "name": "Dr Sam"}],
        "started_at": started,
        "stopped_at": None,
        "stop_reason": None,
        "files": [],
    }
    done = {
        **finishing,
        "status": "complete",
        "stopped_at": started + 65,
        "stop_reason": "stopped_by_therapist",
        "files": [
            {
                "name": "p-1.webm",
                "participant": "p-1",
                "bytes": 2_500_000,
                "sha256": "0" * 64,
                "duration": 65.0,
                "codecs": ["vp8", "opus"],
            }
        ],
    }
    asked: list[float] = []

    async def answer(route: Route) -> None:
        asked.append(time.monotonic())
        manifest = finishing if len(asked) <= 2 else done
        await route.fulfill(json={"recordings": [manifest]})

    await therapist.route("**/api/v1/recordings?**", answer)
    await join(therapist)
    await therapist.get_by_role("button", name="Recordings", exact=True).click()
    item = panel(therapist).get_by_role("listitem").first
    await expect(fact(item, "Status")).to_have_text("Still being finished. This takes a moment.")
    await expect(fact(item, "Length")).to_have_text("Not known yet")
    await expect(fact(item, "Status")).to_have_text("Complete")
    await expect(fact(item, "Length")).to_have_text("1 minute 5 seconds")
    await expect(item.get_by_role("button", name="Download Dr Sam's part")).to_be_visible()
    await expect(item).to_contain_text("p-1.webm, 2.4 MB, video and sound")
    width = await therapist.evaluate("document.documentElement.scrollWidth")
    assert width <= 320, f"page is {width}px wide at a 320px viewport"
    await item.scroll_into_view_if_needed()
    await screenshot(therapist, "32-recordings-panel-320px")
    # About a second apart, and no more asking once it is finished.
    assert len(asked) == 3
    assert all(0.7 <= b - a <= 2.0 for a, b in itertools.pairwise(asked)), asked
    await asyncio.sleep(1.5)
    assert len(asked) == 3
