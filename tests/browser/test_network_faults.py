"""ICE failure between browsers: a restart first, then a fresh connection.

UDP is cut with nftables inside the suite's own loopback-only network namespace (WebRTC
media and ICE are UDP; the signalling WebSocket is TCP and carries on)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import Site, in_call
from tests.browser.pages import FRAMES, media_flowing, wait_stat_above

pytestmark = [pytest.mark.browser, pytest.mark.network]

TABLE = "sessionroom_test"


def _only_loopback() -> bool:
    # Asks the kernel for this namespace's interfaces (sysfs may show the host's).
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@contextmanager
def udp_cut() -> Iterator[None]:
    if not _only_loopback():
        pytest.fail("This test changes the firewall: run it through scripts/test (its own netns).")
    script = (
        f"add table inet {TABLE}\n"
        f"add chain inet {TABLE} input {{ type filter hook input priority 0; }}\n"
        f"add rule inet {TABLE} input meta l4proto udp drop\n"
    )
    subprocess.run(["nft", "-f", "-"], input=script, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", TABLE], check=True)


async def test_ice_restart_then_fresh_connection(browser: Browser, site: Site) -> None:
    therapist, client = await in_call(browser, site)
    await media_flowing(client)
    await media_flowing(therapist)
    therapist_id = await therapist.evaluate("document.body.dataset.participant")
    client_id = await client.evaluate("document.body.dataset.participant")
    # The impolite side (the smaller id) is the one that starts a fresh connection.
    impolite = client if client_id < therapist_id else therapist

    with udp_cut():
        # The indicator says so: first a stall (poor), then ICE notices (reconnecting).
        await expect(client.locator(".peer")).to_have_attribute("data-quality", "poor")
        await expect(client.locator(".peer")).to_have_attribute(
            "data-quality", "reconnecting", timeout=20_000
        )
        await expect(client.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        await wait_stat_above(client, "iceRestarts", 0, timeout_ms=20_000)
        await wait_stat_above(impolite, "rebuilds", 0, timeout_ms=30_000)

    # Back on the network: the fresh connection comes up and video flows again.
    await expect(client.locator(".peer")).to_have_attribute(
        "data-quality", "connected", timeout=30_000
    )
    await wait_stat_above(client, FRAMES, 10, timeout_ms=30_000)
    await wait_stat_above(therapist, FRAMES, 10, timeout_ms=30_000)
    await expect(client.locator("#screen-call")).to_be_visible()
