"""Real headless Chromium (Debian's), driven by Playwright, and beside it Debian's Firefox,
driven over WebDriver BiDi (firefox.py), against a real server on loopback. A missing browser
fails the suite: scripts/test installs both."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from signaling.app import create_app
from signaling.config import Settings
from signaling.core.model import Role, RoomSettings
from signaling.tokens import KeyRing
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.browser.firefox import FIREFOX, Firefox
from tests.support import make_keys, make_settings, mint

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: run scripts/test, which installs it.")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def firefox_executable() -> str:
    if not Path(FIREFOX).is_file():
        pytest.fail(f"Firefox is missing at {FIREFOX}: run scripts/test, which installs it.")
    return FIREFOX


@pytest.fixture
async def firefox(
    firefox_executable: str, request: pytest.FixtureRequest
) -> AsyncIterator[Firefox]:
    """Debian's Firefox, for a test to use beside Chromium. Its pages' console goes to
    artifacts/console/<test>-firefox.log (what the process prints, to ...-firefox-stderr.log)."""
    name = re.sub(r"[^\w.-]+", "_", request.node.name)
    console = ARTIFACTS / "console" / f"{name}-firefox.log"
    browser = await Firefox.launch(console, executable=firefox_executable)
    try:
        yield browser
    finally:
        await browser.close()


class Site:
    """A running server and the links to open on it."""

    def __init__(self, server: TestServer, keys: KeyRing, settings: Settings) -> None:
        self.server = server
        self.keys = keys
        self.settings = settings
        self.base = f"http://127.0.0.1:{server.port}"

    @property
    def app(self) -> web.Application:
        app: web.Application = self.server.app
        return app

    def link(
        self,
        room: str,
        role: Role = Role.CLIENT,
        name: str = "Alex",
        settings: RoomSettings | None = None,
    ) -> str:
        return f"{self.base}/join#{mint(self.keys, room, role, name, settings=settings)}"


async def start_site(aiohttp_server: AiohttpServer, **overrides: Any) -> Site:
    settings = make_settings(grace_seconds=10.0, join_timeout_seconds=5.0, **overrides)
    keys = make_keys()
    server = await aiohttp_server(create_app(settings, keys))
    return Site(server, keys, settings)


@pytest.fixture
async def site(aiohttp_server: AiohttpServer) -> Site:
    return await start_site(aiohttp_server)


@pytest.fixture
async def recording_site(aiohttp_server: AiohttpServer, tmp_path: Path) -> Site:
    """A server that records: recordings under tmp_path, and its aiortc peer on loopback."""
    return await start_site(
        aiohttp_server,
        state_dir=tmp_path / "state",
        recordings_dir=tmp_path / "recordings",
        ice_loopback=True,
    )


async def open_page(browser: Browser, url: str, **context_options: Any) -> Page:
    context: BrowserContext = await browser.new_context(**context_options)
    page = await context.new_page()
    page.set_default_timeout(10_000)
    await page.goto(url)
    return page


async def in_call(
    browser: Browser,
    site: Site,
    room: str = "r",
    settings: RoomSettings | None = None,
    **context_options: Any,
) -> tuple[Page, Page]:
    """A therapist ("Dr Sam") and a client ("Alex") in a call, each in their own browser."""
    therapist = await open_page(
        browser, site.link(room, Role.THERAPIST, "Dr Sam", settings), **context_options
    )
    client = await open_page(
        browser, site.link(room, Role.CLIENT, "Alex", settings), **context_options
    )
    for page in (therapist, client):
        await page.get_by_role("button", name="Join", exact=True).click()
    await therapist.get_by_role("button", name="Admit Alex").click()
    await client.locator("#screen-call").wait_for()
    return therapist, client


async def screenshot(page: Page, name: str) -> None:
    (ARTIFACTS / "screenshots").mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "screenshots" / f"{name}.png"), full_page=True)
