"""Consent-gated recording with a Firefox participant: Firefox's consent dialog, its
indicator, and its recording leg (a send-only peer connection from Firefox to the server's
aiortc peer), whose file on disk decodes to the audio and video Firefox sent."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import Browser, expect

from signaling.core.model import Role
from tests.browser import firefox_pages as ff
from tests.browser.conftest import Site, open_page
from tests.browser.firefox import Firefox
from tests.browser.pages import join
from tests.browser.test_recording import (
    CONSENT,
    RECORD_SECONDS,
    decode,
    dialog,
    finished,
    leg_connected,
    recording_folders,
    recording_gone,
    recording_shown,
    say_yes,
)

pytestmark = [pytest.mark.browser, pytest.mark.network]

DIALOG_OPEN = "() => document.getElementById('consent-dialog').open"
DIALOG_CLOSED = "() => !document.getElementById('consent-dialog').open"
STATUS = "() => document.getElementById('rec-status-text').textContent"


async def test_a_firefox_participant_is_asked_and_recorded(
    browser: Browser, firefox: Firefox, recording_site: Site
) -> None:
    site = recording_site
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam", CONSENT))
    await join(therapist)
    client = await ff.open_room(firefox, site, Role.CLIENT, "Alex", CONSENT)
    await ff.join(client)
    await therapist.get_by_role("button", name="Admit Alex").click()
    await ff.shown(client, "screen-call")

    # The therapist asks; Firefox shows the same question, and its answer counts.
    await therapist.get_by_role("button", name="Record", exact=True).click()
    await expect(dialog(therapist)).to_be_visible()
    await client.wait_for(DIALOG_OPEN, what="the consent dialog open")
    asked = await client.evaluate("() => document.getElementById('consent-ask').textContent")
    assert "Dr Sam asks to record this session" in asked
    await say_yes(therapist)
    await client.click("button", "Yes, record")
    await client.wait_for(DIALOG_CLOSED, what="the consent dialog closed")

    await recording_shown(therapist)
    await ff.wait_body_data(client, "recording", "recording")
    assert await client.evaluate(STATUS) == "Recording"
    await leg_connected(therapist)
    await ff.wait_body_data(client, "recLeg", "connected", timeout=20)
    await asyncio.sleep(RECORD_SECONDS)  # what is recorded: seconds of both legs
    await therapist.get_by_role("button", name="Stop recording").click()
    await recording_gone(therapist, "You stopped the recording.")
    await ff.wait_body_data(client, "recording", "stopped")
    assert await client.evaluate(STATUS) == "The therapist stopped the recording."
    await ff.wait_body_data(client, "recLeg", "none")

    manifest = await finished(site)
    assert manifest["status"] == "complete"
    interval = manifest["stopped_at"] - manifest["started_at"]
    ids = {
        "firefox": await ff.body_data(client, "participant"),
        "chromium": await therapist.evaluate("document.body.dataset.participant"),
    }
    by_participant = {f["participant"]: f["name"] for f in manifest["files"]}
    assert set(by_participant) == set(ids.values()), manifest["files"]
    folder = recording_folders(site)[0]
    for browser_name, participant in ids.items():
        got = await asyncio.to_thread(decode, folder / by_participant[participant])
        assert got.kinds == {"audio", "video"}, (browser_name, got)
        assert got.video_frames >= 10 and got.audio_frames >= 50, (browser_name, got)
        assert abs(got.end - interval) <= 0.1 * interval, (browser_name, got, interval)
    assert firefox.page_errors == []
