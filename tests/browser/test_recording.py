"""Consent-gated recording in two browsers: the therapist asks, everyone answers in a dialog,
everyone sees the indicator, each page's recording leg reaches the server, and the files on
disk hold what was sent. A no, a withdrawal, audio only and a resume, a newcomer, a leg the
server refuses, a room without recording, axe, and the keyboard at 320 pixels."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.async_api import Browser, Locator, Page, WebSocketRoute, expect

from signaling.appkeys import CONNECTIONS
from signaling.core.model import RecordingMode, Role, RoomSettings
from signaling.ws import Connection
from tests.browser.conftest import Site, in_call, open_page, screenshot
from tests.browser.pages import join, media_flowing
from tests.browser.test_accessibility import audit, audited_page

pytestmark = [pytest.mark.browser, pytest.mark.network]

CONSENT = RoomSettings(recording=RecordingMode.CONSENT)
DIALOG = "May this session be recorded?"
RECORD_SECONDS = 5.0


# ---------- what a person does and sees ----------


def dialog(page: Page) -> Locator:
    return page.get_by_role("dialog", name=DIALOG)


async def asked(pages: tuple[Page, ...], by: str = "Dr Sam") -> None:
    for page in pages:
        await expect(dialog(page)).to_be_visible()
        await expect(dialog(page)).to_contain_text(f"{by} asks to record this session")


async def request(therapist: Page, client: Page) -> None:
    await therapist.get_by_role("button", name="Record", exact=True).click()
    await asked((therapist, client))


async def say_yes(page: Page) -> None:
    await dialog(page).get_by_role("button", name="Yes, record").click()
    await expect(dialog(page)).to_be_hidden()


async def everyone_agrees(therapist: Page, client: Page) -> None:
    """The therapist asks to record; both say yes."""
    await request(therapist, client)
    await say_yes(therapist)
    await say_yes(client)


async def recording_shown(page: Page) -> None:
    await expect(page.locator("body")).to_have_attribute("data-recording", "recording")
    await expect(page.locator("#rec-bar")).to_have_attribute("data-status", "recording")
    await expect(page.locator("#rec-status")).to_be_visible()
    await expect(page.locator("#rec-status-text")).to_have_text("Recording")


async def recording_gone(page: Page, why: str) -> None:
    await expect(page.locator("body")).to_have_attribute("data-recording", "stopped")
    await expect(page.locator("#rec-bar[data-status=recording]")).to_have_count(0)
    await expect(page.locator("#rec-status-text")).to_have_text(why)
    await expect(page.locator("body")).to_have_attribute("data-rec-leg", "none")


async def leg_connected(page: Page) -> None:
    await expect(page.locator("body")).to_have_attribute(
        "data-rec-leg", "connected", timeout=20_000
    )


async def recording_call(browser: Browser, site: Site, **options: Any) -> tuple[Page, Page]:
    """A therapist and a client in a call, both having said yes: recording is on."""
    therapist, client = await in_call(browser, site, settings=CONSENT, **options)
    await everyone_agrees(therapist, client)
    for page in (therapist, client):
        await recording_shown(page)
    return therapist, client


async def call_through(browser: Browser, site: Site, route: Any) -> tuple[Page, Page]:
    """A therapist and a client in a call in a consent room, the client's socket passing
    through `route` (a WebSocket route handler)."""
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam", CONSENT))
    await join(therapist)
    context = await browser.new_context()
    client = await context.new_page()
    client.set_default_timeout(10_000)
    await client.route_web_socket("**/ws", route)
    await client.goto(site.link("r", Role.CLIENT, "Alex", CONSENT))
    await join(client)
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator(".peer")).to_have_count(1)
    return therapist, client


# Every state the page's recording leg passes through, in order, from now on (each change,
# even one overwritten in the same task: a record's old value is the previous one's new value).
LEG_STATES = """() => {
    window.legStates = [];
    new MutationObserver((records) => {
        const values = records.map((r) => r.oldValue).slice(1);
        values.push(document.body.dataset.recLeg);
        window.legStates.push(...values);
    }).observe(document.body, {
        attributes: true, attributeFilter: ['data-rec-leg'], attributeOldValue: true,
    });
}"""


async def new_leg_then_stop(therapist: Page, client: Page, seconds: float) -> None:
    """The client's page has opened a new leg, which connects; after `seconds` of recording
    through it, the therapist stops."""
    await client.wait_for_function(
        "() => window.legStates.includes('new') && document.body.dataset.recLeg === 'connected'",
        timeout=20_000,
    )
    await asyncio.sleep(seconds)
    await therapist.get_by_role("button", name="Stop recording").click()
    await recording_gone(client, "The therapist stopped the recording.")


# ---------- what is on disk ----------


def recording_folders(site: Site) -> list[Path]:
    root = site.settings.recordings_path
    return sorted(p for p in root.glob("rec-*") if p.is_dir()) if root.is_dir() else []


async def finished(site: Site, timeout: float = 20.0) -> dict[str, Any]:
    """The one recording's manifest, once it is no longer being written."""
    for _ in range(int(timeout / 0.1)):
        folders = recording_folders(site)
        if folders:
            assert len(folders) == 1, folders
            path = folders[0] / "manifest.json"
            if path.exists():
                manifest: dict[str, Any] = json.loads(path.read_text())
                if manifest["status"] != "recording":
                    return manifest
        await asyncio.sleep(0.1)
    raise AssertionError(f"no finished recording in {site.settings.recordings_path}")


@dataclass(frozen=True)
class Decoded:
    kinds: set[str]
    video_frames: int
    audio_frames: int
    end: float  # where the last decoded frame ends, in seconds on the recording's timeline


def decode(path: Path) -> Decoded:
    """Decode the whole file, as a player would."""
    video = audio = 0
    end = 0.0
    with av.open(str(path)) as container:
        kinds = {str(s.type) for s in container.streams}
        for frame in container.decode(*container.streams):
            assert frame.time is not None
            if isinstance(frame, av.VideoFrame):
                video += 1
                end = max(end, frame.time)
            else:
                audio += 1
                end = max(end, frame.time + frame.samples / frame.sample_rate)
    return Decoded(kinds, video, audio, end)


async def decoded_part_of(site: Site, manifest: dict[str, Any], page: Page) -> Decoded:
    """The file of the participant on `page`, in the one recording, decoded."""
    participant = await page.evaluate("document.body.dataset.participant")
    [entry] = [f for f in manifest["files"] if f["participant"] == participant]
    return await asyncio.to_thread(decode, recording_folders(site)[0] / entry["name"])


# ---------- tests ----------


async def test_everyone_says_yes_and_each_page_is_recorded(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site
    therapist, client = await in_call(browser, site, settings=CONSENT)
    await therapist.get_by_role("button", name="Record", exact=True).click()
    await asked((therapist, client))
    for page in (therapist, client):
        await expect(dialog(page)).to_contain_text(site.settings.recordings_where)
        await expect(dialog(page)).to_contain_text("only your sound is kept")
        await expect(dialog(page)).to_contain_text("withdraw at any time")
    await screenshot(client, "20-recording-consent-dialog")

    await say_yes(therapist)
    await expect(therapist.locator("#rec-status-text")).to_have_text(
        "Waiting for everyone to agree to recording…"
    )
    await expect(therapist.get_by_role("button", name="Stop recording")).to_be_visible()
    await say_yes(client)
    for page in (therapist, client):
        await recording_shown(page)
        await expect(page.get_by_role("button", name="Withdraw consent")).to_be_visible()
        await expect(page.locator("#announce")).to_contain_text("Recording started")
    await expect(client.get_by_role("button", name="Record", exact=True)).to_have_count(0)
    for page in (therapist, client):
        await leg_connected(page)
    await screenshot(client, "21-recording-indicator")

    await asyncio.sleep(RECORD_SECONDS)
    await therapist.get_by_role("button", name="Stop recording").click()
    await recording_gone(therapist, "You stopped the recording.")
    await recording_gone(client, "The therapist stopped the recording.")
    await expect(therapist.get_by_role("button", name="Record", exact=True)).to_be_visible()

    manifest = await finished(site)
    assert manifest["status"] == "complete"
    assert manifest["stop_reason"] == "stopped_by_therapist"
    interval = manifest["stopped_at"] - manifest["started_at"]
    assert interval > RECORD_SECONDS
    ids = {await page.evaluate("document.body.dataset.participant") for page in (therapist, client)}
    files = manifest["files"]
    assert {f["participant"] for f in files} == ids
    folder = recording_folders(site)[0]
    for file in files:
        decoded = await asyncio.to_thread(decode, folder / file["name"])
        assert decoded.kinds == {"audio", "video"}, (file, decoded)
        assert decoded.video_frames > 0 and decoded.audio_frames > 0, (file, decoded)
        assert abs(decoded.end - interval) <= 0.1 * interval, (file, decoded, interval)


async def test_a_no_means_recording_does_not_start(browser: Browser, recording_site: Site) -> None:
    therapist, client = await in_call(browser, recording_site, settings=CONSENT)
    await request(therapist, client)
    await dialog(client).get_by_role("button", name="No", exact=True).click()
    # The therapist's question is over before they answered: it is taken away.
    await expect(dialog(therapist)).to_be_hidden()
    for page in (therapist, client):
        await expect(page.locator("#rec-status-text")).to_have_text(
            "Recording did not start: not everyone agreed."
        )
        await expect(page.locator("body")).to_have_attribute("data-recording", "stopped")
        await expect(page.locator("body")).to_have_attribute("data-rec-leg", "none")
    await expect(therapist.get_by_role("button", name="Record", exact=True)).to_be_visible()
    assert recording_folders(recording_site) == []


async def test_withdrawing_consent_stops_the_recording(
    browser: Browser, recording_site: Site
) -> None:
    therapist, client = await recording_call(browser, recording_site)
    await leg_connected(client)
    await client.get_by_role("button", name="Withdraw consent").click()
    await recording_gone(client, "Recording stopped: you withdrew your consent.")
    await recording_gone(therapist, "Recording stopped: consent was withdrawn.")
    await expect(therapist.locator("#announce")).to_contain_text(
        "Recording stopped: consent was withdrawn."
    )
    await expect(client.get_by_role("button", name="Withdraw consent")).to_be_hidden()
    manifest = await finished(recording_site)
    assert manifest["stop_reason"] == "withdrawn"


async def test_audio_only_is_recorded_as_sound_and_a_resume_opens_a_new_leg(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site
    therapist, client = await in_call(browser, site, settings=CONSENT)
    await client.get_by_role("button", name="Audio only").click()
    await expect(client.locator("#self-off")).to_be_visible()
    await everyone_agrees(therapist, client)
    for page in (therapist, client):
        await recording_shown(page)
        await leg_connected(page)
    await client.evaluate(LEG_STATES)

    # The server drops the client's socket; the page resumes, still recording.
    client_id = await client.evaluate("document.body.dataset.participant")
    [conn] = [
        c
        for c in site.app[CONNECTIONS]
        if isinstance(c, Connection) and c.session and c.session.participant_id == client_id
    ]
    await conn.ws.close()
    await expect(client.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    await expect(client.locator("#connection")).to_have_attribute("data-state", "connected")
    await recording_shown(client)
    # A new leg replaced the old one, and it reaches the server too.
    await new_leg_then_stop(therapist, client, 1.5)

    manifest = await finished(site)
    assert manifest["status"] == "complete"
    folder = recording_folders(site)[0]
    kinds = {
        f["participant"]: (await asyncio.to_thread(decode, folder / f["name"])).kinds
        for f in manifest["files"]
    }
    therapist_id = await therapist.evaluate("document.body.dataset.participant")
    assert kinds == {therapist_id: {"audio", "video"}, client_id: {"audio"}}


async def test_a_newcomer_pauses_recording_until_they_say_yes(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site
    family = RoomSettings(max_clients=2, recording=RecordingMode.CONSENT)
    therapist, client = await in_call(browser, site, settings=family)
    await everyone_agrees(therapist, client)
    await leg_connected(client)
    first = await client.evaluate("document.body.dataset.recordingId")

    newcomer = await open_page(browser, site.link("r", Role.CLIENT, "Sam", family))
    await join(newcomer)
    await therapist.get_by_role("button", name="Admit Sam").click()
    for page in (therapist, client):
        await expect(page.locator("#rec-status-text")).to_have_text(
            "Recording paused: a new participant needs to agree."
        )
        await expect(page.locator("body")).to_have_attribute("data-rec-leg", "none")
    # Only the newcomer is asked; the others' yes stands.
    await expect(dialog(newcomer)).to_contain_text("Dr Sam asks to record this session")
    await expect(dialog(client)).to_be_hidden()
    await say_yes(newcomer)
    for page in (therapist, client, newcomer):
        await recording_shown(page)
        await leg_connected(page)
    assert await client.evaluate("document.body.dataset.recordingId") != first


async def test_a_camera_turned_on_mid_recording_is_recorded_through_a_new_leg(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site
    therapist, client = await in_call(browser, site, settings=CONSENT)
    await client.get_by_role("button", name="Camera off").click()
    await expect(client.get_by_role("button", name="Camera on")).to_be_visible()
    await everyone_agrees(therapist, client)
    await recording_shown(client)
    await leg_connected(client)
    await client.evaluate(LEG_STATES)
    await asyncio.sleep(1.0)  # sound only, for a second

    # The leg had no video to send: turning the camera on opens a new one that has.
    await client.get_by_role("button", name="Camera on").click()
    await expect(client.get_by_role("button", name="Camera off")).to_be_visible()
    await new_leg_then_stop(therapist, client, 2.0)
    await expect(client.locator("#rec-note")).to_be_hidden()

    manifest = await finished(site)
    assert manifest["status"] == "complete"
    got = await decoded_part_of(site, manifest, client)
    assert got.kinds == {"audio", "video"}, got
    assert got.video_frames >= 10 and got.audio_frames >= 50, got


def spoiling_first_answer(spoiled: list[str]) -> Any:
    """A WebSocket route that passes everything through, but spoils the DTLS fingerprint of
    the first `rec_answer` on its way to the page: that leg's ICE connects, then its DTLS
    handshake fails, as on a path that breaks the connection."""

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def incoming(message: str | bytes) -> None:
            if not spoiled and isinstance(message, str) and '"rec_answer"' in message:
                data = json.loads(message)
                data["sdp"] = re.sub(
                    r"(a=fingerprint:\S+ )([0-9A-Fa-f:]+)",
                    lambda m: m.group(1) + re.sub(r"[0-9A-Fa-f]", "0", m.group(2)),
                    data["sdp"],
                )
                spoiled.append(data["recording"])
                message = json.dumps(data)
            ws.send(message)

        server.on_message(incoming)

    return route


async def test_a_leg_whose_connection_fails_is_opened_again(
    browser: Browser, recording_site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    site = recording_site
    caplog.set_level(logging.INFO, logger="sessionroom")
    spoiled: list[str] = []
    therapist, client = await call_through(browser, site, spoiling_first_answer(spoiled))
    await client.evaluate(LEG_STATES)
    await everyone_agrees(therapist, client)
    await recording_shown(client)

    # The first leg fails; the page opens another by itself, which connects.
    await client.wait_for_function(
        "() => window.legStates.includes('failed') && document.body.dataset.recLeg === 'connected'",
        timeout=30_000,
    )
    states = await client.evaluate("window.legStates")
    assert states.index("failed") < len(states) - 1 - states[::-1].index("connected"), states
    assert len(spoiled) == 1
    # Nothing to tell the person: the retry worked.
    await expect(client.locator("#rec-note")).to_be_hidden()
    await expect(client.locator("#alert")).to_have_text("")
    await asyncio.sleep(2.0)
    await therapist.get_by_role("button", name="Stop recording").click()
    await recording_gone(client, "The therapist stopped the recording.")

    manifest = await finished(site)
    client_id = await client.evaluate("document.body.dataset.participant")
    got = await decoded_part_of(site, manifest, client)
    assert got.kinds == {"audio", "video"} and got.video_frames >= 10, got
    # The server took two legs from the client, and logged the loss of the first by ids.
    told = [(r.getMessage(), getattr(r, "participant", None)) for r in caplog.records]
    assert told.count(("recording leg accepted", client_id)) == 2, told
    assert ("recording leg lost", client_id) in told, told


def no_vp8(offer: dict[str, Any]) -> None:
    """An offer as from a browser that cannot send VP8."""
    offer["sdp"] = offer["sdp"].replace("VP8/90000", "XVP/90000")


def rewriting_offers(rewrite: Callable[[dict[str, Any]], None]) -> Any:
    """A WebSocket route that passes everything through, but changes `rec_offer` messages on
    their way to the server, so that the server itself refuses them."""

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def outgoing(message: str | bytes) -> None:
            if isinstance(message, str) and '"rec_offer"' in message:
                data = json.loads(message)
                rewrite(data)
                message = json.dumps(data)
            server.send(message)

        ws.on_message(outgoing)
        server.on_message(ws.send)

    return route


async def test_a_refused_leg_leaves_a_calm_note_and_the_call_goes_on(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site

    def stale(offer: dict[str, Any]) -> None:
        offer["recording"] = "rec-20000101-000000-aaaaaa"

    pages = []
    for role, name, rewrite in ((Role.THERAPIST, "Dr Sam", no_vp8), (Role.CLIENT, "Alex", stale)):
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(10_000)
        await page.route_web_socket("**/ws", rewriting_offers(rewrite))
        await page.goto(site.link("r", role, name, CONSENT))
        await join(page)
        pages.append(page)
    therapist, client = pages
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator(".peer")).to_have_count(1)
    await everyone_agrees(therapist, client)
    await expect(therapist.locator("#rec-note")).to_have_text(
        "This browser cannot send video in a format the recorder keeps, so your part is not "
        "being recorded. The call goes on."
    )
    await expect(client.locator("#rec-note")).to_have_text(
        "Your part of the session could not be added to the recording. The call goes on."
    )
    for page in (therapist, client):
        # The gate stays open (everyone said yes); this page's part is simply not sent.
        await recording_shown(page)
        await expect(page.locator("body")).to_have_attribute("data-rec-leg", "none")
        await expect(page.locator("#alert")).to_have_text("")
    await media_flowing(client)
    await therapist.get_by_role("button", name="Stop recording").click()
    await expect(client.locator("#rec-note")).to_be_hidden()
    manifest = await finished(site)
    assert manifest["files"] == []


async def test_the_therapist_is_told_whose_part_is_not_recorded(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site

    therapist, client = await call_through(browser, site, rewriting_offers(no_vp8))
    await everyone_agrees(therapist, client)
    await expect(therapist.locator("#rec-note")).to_have_text(
        "Alex's browser cannot send video in a format the recorder keeps, so their part is "
        "not being recorded."
    )
    await expect(therapist.locator("body")).to_have_attribute("data-rec-leg", "connected")
    await asyncio.sleep(2)  # the therapist's own part is recorded meanwhile
    await therapist.get_by_role("button", name="Stop recording").click()
    manifest = await finished(site)
    assert [f["participant"] for f in manifest["files"]] == [
        await therapist.evaluate("document.body.dataset.participant")
    ]


async def test_no_record_button_when_recording_is_off(browser: Browser, site: Site) -> None:
    therapist = await open_page(browser, site.link("r", Role.THERAPIST, "Dr Sam"))
    await join(therapist)
    await expect(therapist.locator("#screen-call")).to_be_visible()
    await expect(therapist.get_by_role("button", name="End session for everyone")).to_be_visible()
    await expect(therapist.get_by_role("button", name="Record", exact=True)).to_have_count(0)
    assert await therapist.evaluate("document.body.dataset.recording") == "idle"


async def test_consent_dialog_and_indicator_pass_axe(
    browser: Browser, recording_site: Site
) -> None:
    site = recording_site
    therapist = await audited_page(browser, site.link("r", Role.THERAPIST, "Dr Sam", CONSENT))
    client = await audited_page(browser, site.link("r", Role.CLIENT, "Alex", CONSENT))
    for page in (therapist, client):
        await join(page)
    await therapist.get_by_role("button", name="Admit Alex").click()
    await expect(client.locator("#screen-call")).to_be_visible()
    await request(therapist, client)
    await audit(client, "consent dialog")
    await say_yes(therapist)
    await audit(therapist, "waiting for everyone to agree")
    await say_yes(client)
    for page in (therapist, client):
        await recording_shown(page)
    await audit(client, "recording indicator")
    await audit(therapist, "therapist recording")


async def test_consent_dialog_by_keyboard_at_320_pixels(
    browser: Browser, recording_site: Site
) -> None:
    therapist, client = await in_call(
        browser, recording_site, settings=CONSENT, viewport={"width": 320, "height": 640}
    )
    await client.get_by_role("button", name="Mute").focus()
    # The therapist asks with the keyboard; the dialog opens for both.
    record = therapist.get_by_role("button", name="Record", exact=True)
    await record.focus()
    await therapist.keyboard.press("Enter")
    await asked((therapist, client))
    # The dialog takes the focus, at its start (its title), for both.
    for page in (therapist, client):
        await expect(page.locator("#consent-title")).to_be_focused()
    box = await dialog(client).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320, box
    for name in ("Yes, record", "No"):
        button = await dialog(client).get_by_role("button", name=name, exact=True).bounding_box()
        assert button is not None and button["x"] + button["width"] <= 320, name
    await screenshot(client, "22-recording-consent-dialog-320px")

    # Tab goes round the dialog's buttons and never leaves it, both ways.
    seen = []
    for _ in range(5):
        await client.keyboard.press("Tab")
        seen.append(await client.evaluate("document.activeElement.textContent"))
    assert seen == ["Yes, record", "No", "Yes, record", "No", "Yes, record"], seen
    await client.keyboard.press("Shift+Tab")
    assert await client.evaluate("document.activeElement.textContent") == "No"
    await client.keyboard.press("Shift+Tab")
    assert await client.evaluate("document.activeElement.textContent") == "Yes, record"

    # The therapist says yes with the keyboard; focus goes back to their button.
    await therapist.keyboard.press("Tab")
    await therapist.keyboard.press("Enter")
    await expect(dialog(therapist)).to_be_hidden()
    await expect(therapist.get_by_role("button", name="Stop recording")).to_be_focused()
    # Escape is a no.
    await client.keyboard.press("Escape")
    await expect(dialog(client)).to_be_hidden()
    await expect(client.get_by_role("button", name="Mute")).to_be_focused()
    for page in (therapist, client):
        await expect(page.locator("#rec-status-text")).to_have_text(
            "Recording did not start: not everyone agreed."
        )
    assert recording_folders(recording_site) == []
