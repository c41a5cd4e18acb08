"""What a person does on the room page, and what they can observe, in Firefox (firefox.py):
the same steps and figures as pages.py, over WebDriver BiDi."""

from __future__ import annotations

from signaling.core.model import Role, RoomSettings
from tests.browser.conftest import AXE, Site
from tests.browser.firefox import Firefox, FirefoxPage
from tests.browser.pages import AUDIO, FRAMES

VISIBLE = "(id) => { const el = document.getElementById(id); return Boolean(el) && !el.hidden; }"


async def open_room(
    firefox: Firefox,
    site: Site,
    role: Role = Role.CLIENT,
    name: str = "Alex",
    settings: RoomSettings | None = None,
    room: str = "r",
    axe: bool = False,
) -> FirefoxPage:
    """A participant's link opened in a window of its own (with axe-core in it, if asked)."""
    preload = (AXE.read_text(encoding="utf-8"),) if axe else ()
    return await firefox.new_page(
        site.link(room, role, name, settings), name=f"{role.value} {name}", preload=preload
    )


async def shown(page: FirefoxPage, element_id: str, timeout: float = 10.0) -> None:
    await page.wait_for(VISIBLE, element_id, timeout=timeout, what=f"#{element_id} shown")


async def join(page: FirefoxPage) -> None:
    """The device check is on screen, the camera ready; the person presses Join."""
    await shown(page, "screen-prejoin")
    await page.click("button", "Join")


async def body_data(page: FirefoxPage, key: str) -> str:
    value: str = await page.evaluate("(key) => document.body.dataset[key] || ''", key)
    return value


async def wait_body_data(page: FirefoxPage, key: str, value: str, timeout: float = 10.0) -> None:
    await page.wait_for(
        "(key, value) => document.body.dataset[key] === value",
        key,
        value,
        timeout=timeout,
        what=f"body data-{key} = {value!r}",
    )


async def stat(page: FirefoxPage, key: str, nth: int = 0) -> float:
    value = await page.evaluate(
        "(key, nth) => document.querySelectorAll('.peer')[nth]?.dataset[key] || '0'", key, nth
    )
    return float(value)


async def wait_stat_above(
    page: FirefoxPage, key: str, above: float, nth: int = 0, timeout: float = 15.0
) -> None:
    """Wait until remote tile `nth` reports `key` above `above`."""
    await page.wait_for(
        "(key, above, nth) =>"
        " Number(document.querySelectorAll('.peer')[nth]?.dataset[key] || 0) > above",
        key,
        above,
        nth,
        timeout=timeout,
        what=f"remote {key} above {above}",
    )


async def media_flowing(page: FirefoxPage) -> None:
    """Remote video frames are being decoded and remote audio energy is rising."""
    await wait_stat_above(page, FRAMES, 0)
    await wait_stat_above(page, AUDIO, 0)
    frames, energy = await stat(page, FRAMES), await stat(page, AUDIO)
    await wait_stat_above(page, FRAMES, frames + 10)
    await wait_stat_above(page, AUDIO, energy)


async def axe_violations(page: FirefoxPage) -> list[str]:
    """Serious or critical axe-core violations on what is on screen now."""
    found: list[str] = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ['violations']});
            return result.violations
                .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                .map((v) => `${v.id} (${v.impact}): ${v.help} at `
                    + JSON.stringify(v.nodes.map((n) => n.target)));
        }"""
    )
    return found
