"""What a person does on the room page, and what they can observe, in Playwright terms."""

from __future__ import annotations

from playwright.async_api import Page, expect

# The page exposes, on each remote tile, the getStats figures its connection indicator uses.
FRAMES = "framesDecoded"
AUDIO = "audioEnergy"


async def join(page: Page) -> None:
    await expect(page.locator("#screen-prejoin")).to_be_visible()
    await page.get_by_role("button", name="Join", exact=True).click()


async def stat(page: Page, key: str, nth: int = 0) -> float:
    value = await page.locator(".peer").nth(nth).evaluate(f"el => el.dataset.{key} || '0'")
    return float(value)


async def wait_stat_above(
    page: Page, key: str, above: float, nth: int = 0, timeout_ms: float = 15_000
) -> None:
    """Wait, in the page, until remote tile `nth` reports `key` above `above`."""
    await page.wait_for_function(
        "([key, above, nth]) => "
        "Number(document.querySelectorAll('.peer')[nth]?.dataset[key] || 0) > above",
        arg=[key, above, nth],
        timeout=timeout_ms,
    )


async def media_flowing(page: Page) -> None:
    """Remote video frames are being decoded and remote audio energy is rising."""
    await wait_stat_above(page, FRAMES, 0)
    await wait_stat_above(page, AUDIO, 0)
    frames, energy = await stat(page, FRAMES), await stat(page, AUDIO)
    await wait_stat_above(page, FRAMES, frames + 10)
    await wait_stat_above(page, AUDIO, energy)


async def video_advancing(page: Page) -> None:
    """The remote <video> element itself presents new frames."""
    counted = await page.evaluate(
        """(ms) => new Promise((resolve) => {
            const video = document.querySelector('.peer video');
            let frames = 0;
            const tick = () => { frames += 1; video.requestVideoFrameCallback(tick); };
            video.requestVideoFrameCallback(tick);
            setTimeout(() => resolve(frames), ms);
        })""",
        1000,
    )
    assert counted >= 5, f"only {counted} remote video frames presented in a second"


async def chat_reaches(sender: Page, receiver: Page, text: str) -> None:
    """`sender` types a chat message; `receiver` is told of it and reads it."""
    await sender.get_by_role("button", name="Chat").click()
    await sender.locator("#chat-input").fill(text)
    await sender.keyboard.press("Enter")
    await receiver.get_by_role("button", name="Chat (1 new)").click()
    await expect(receiver.locator("#chat-log")).to_contain_text(text)
