"""The web chat page in a real browser (Debian's Chromium, driven by Playwright) against the real
gateway and Rasa, as a citizen on a phone would use it.

Needs the `gateway_url` fixture ("http://127.0.0.1:PORT", from tests/conftest.py) and
/usr/bin/chromium (`apt-get install -y chromium`); Playwright never downloads a browser here.
The tests run in file order and share one page, as one citizen's visit; each still sets up what it
needs when run alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page, async_playwright, expect

from tests.browser import CHROMIUM, CHROMIUM_ARGS, NO_HORIZONTAL_SCROLL, VIEWPORT, require_chromium

SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"
TURN_TIMEOUT_MS = 45_000  # one bot turn through the real Rasa, first turn included

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# A turn is over when a new bot bubble is there and the typing indicator is gone ("done" came).
TURN_OVER = """n => document.querySelectorAll('#messages .msg.bot').length > n
                 && document.getElementById('typing').hidden"""
SNAPSHOT = """() => [...document.querySelectorAll('#messages .msg.user, #messages .msg.bot')].map(m => ({
    kind: m.classList.contains('user') ? 'user' : 'bot',
    text: m.querySelector('.text')?.textContent ?? '',
    buttons: [...m.querySelectorAll('.quick-replies button')].map(b => b.textContent),
}))"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page():
    require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        page = await context.new_page()
        page.set_default_timeout(TURN_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        await browser.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


async def open_chat(page: Page, gateway_url: str) -> None:
    """The chat page, connected (a page already open on this gateway is kept as it is)."""
    if not page.url.startswith(gateway_url):
        await page.goto(gateway_url.rstrip("/") + "/")
    await expect(page.locator("#status")).to_have_text("已连接", timeout=TURN_TIMEOUT_MS)


async def wait_turn(page: Page, bots_before: int) -> None:
    await page.wait_for_function(TURN_OVER, arg=bots_before, timeout=TURN_TIMEOUT_MS)


async def ask(page: Page, text: str) -> list[str]:
    """Type and send with Enter; the texts of the bot bubbles that answered."""
    bots = page.locator("#messages .msg.bot")
    before = await bots.count()
    await page.locator("#input").fill(text)
    await page.locator("#input").press("Enter")
    await expect(page.locator("#messages .msg.user .text").last).to_have_text(text)
    await expect(page.locator("#input")).to_have_value("")
    await wait_turn(page, before)
    return (await bots.all_inner_texts())[before:]


async def test_ask_what_it_can_do(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    session = await page.evaluate("document.body.dataset.session")
    assert session, "the page exposes the session id on document.body.dataset.session"

    # Whitespace only: nothing is sent.
    users_before = await page.locator("#messages .msg.user").count()
    await page.locator("#input").fill("   ")
    await page.locator("#send").click()
    assert await page.locator("#messages .msg.user").count() == users_before

    answer = await ask(page, "你能做什么")
    assert any("公交" in text for text in answer), f"the bot's answer does not mention 公交: {answer}"
    # Sending disabled every older reply's buttons, so the enabled ones belong to this answer.
    chips = page.locator(".quick-replies button:not([disabled])")
    assert await chips.count() > 0, "the answer to 你能做什么 carries quick-reply buttons"
    await expect(chips.first).to_be_visible()
    assert await page.evaluate(NO_HORIZONTAL_SCROLL), "the page scrolls sideways at 390px"


async def test_quick_reply(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    chips = page.locator(".quick-replies button:not([disabled])")
    if await chips.count() == 0:
        await ask(page, "你能做什么")
    chip = chips.first
    title = (await chip.inner_text()).strip()
    box = await chip.bounding_box()
    assert box and box["height"] >= 40, f"quick reply tap target too small: {box}"

    bots_before = await page.locator("#messages .msg.bot").count()
    await chip.click()
    await expect(page.locator("#messages .msg.user .text").last).to_have_text(title)
    await wait_turn(page, bots_before)
    # The buttons of the replies before the citizen's choice are spent.
    assert await page.locator(".quick-replies button.chosen").last.is_disabled()
    new_bots = (await page.locator("#messages .msg.bot").all_inner_texts())[bots_before:]
    assert any(text.strip() for text in new_bots), "the quick reply got a bot answer"


async def test_reload_keeps_session_and_history(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    if await page.locator("#messages .msg.user").count() == 0:
        await ask(page, "你能做什么")
    session = await page.evaluate("document.body.dataset.session")
    shown = await page.evaluate(SNAPSHOT)

    await page.reload()
    await expect(page.locator("#status")).to_have_text("已连接", timeout=TURN_TIMEOUT_MS)
    assert await page.evaluate("document.body.dataset.session") == session
    await expect(page.locator("#messages .msg.user, #messages .msg.bot")).to_have_count(len(shown))
    assert await page.evaluate(SNAPSHOT) == shown, "after a reload the page shows the same conversation"


async def test_second_tab_sees_the_conversation_once(page: Page, gateway_url: str) -> None:
    """A second tab of the same session: what either tab sends shows once in both."""
    await open_chat(page, gateway_url)
    other = await page.context.new_page()
    try:
        await open_chat(other, gateway_url)
        session = await page.evaluate("document.body.dataset.session")
        assert await other.evaluate("document.body.dataset.session") == session
        assert await other.evaluate(SNAPSHOT) == await page.evaluate(SNAPSHOT)

        await ask(other, "你能做什么")
        await expect(page.locator("#messages .msg.user .text").last).to_have_text("你能做什么")
        await expect(page.locator("#messages .msg.user, #messages .msg.bot")).to_have_count(
            await other.locator("#messages .msg.user, #messages .msg.bot").count()
        )
        await page.wait_for_timeout(500)  # anything duplicated would have arrived by now
        assert await other.evaluate(SNAPSHOT) == await page.evaluate(SNAPSHOT), (
            "both tabs show the same conversation, each message once"
        )
        assert await page.locator("#typing").is_hidden()
    finally:
        await other.close()


async def test_phone_layout_and_screenshot(page: Page, gateway_url: str) -> None:
    await open_chat(page, gateway_url)
    if await page.locator("#messages .msg.bot").count() == 0:
        await ask(page, "你能做什么")
    for size in ({"width": 360, "height": 640}, VIEWPORT):
        await page.set_viewport_size(size)
        assert await page.evaluate(NO_HORIZONTAL_SCROLL), f"the page scrolls sideways at {size}"
        for hook in ("#input", "#send"):
            box = await page.locator(hook).bounding_box()
            assert box is not None and box["height"] >= 40, f"{hook} tap target too small at {size}: {box}"
            assert size["height"] - 90 < box["y"] + box["height"] <= size["height"], (
                f"{hook} is not at the bottom of a {size} screen: {box}"
            )
    assert await page.get_attribute("#messages", "role") == "log"
    assert await page.get_attribute("#messages", "aria-live") == "polite"
    await expect(page.locator("label[for=input]")).to_have_count(1)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "webchat.png"))
