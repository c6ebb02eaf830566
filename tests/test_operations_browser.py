"""The operators' pages of the console in a real browser (Debian's Chromium) against the real running
system: the unanswered-questions page and the dashboard.

The unanswered questions:
citizens ask the real Rasa things no city service covers; the OutOfScope action reports the turns it
could not serve and the gateway keeps them; an admin sees them grouped on /staff/#/unanswered, assigns a
group out of scope, finds it under 已归类, and downloads the candidate training examples; a viewer reads
the page without the assign controls. The dashboard: the day's web chat messages in its table and chart
(server-drawn SVG), a range chosen by date, the table as a CSV download. Screenshots of both pages at a
phone's size are kept in var/screenshots/ and checked (the phone's width, not a blank page)."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import secrets
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import yaml
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlmodel import col, select

from gateway.db.models import Message, StaffUser, UnansweredQuestion
from gateway.staff.passwords import hash_password
from tests.browser import CHROMIUM, CHROMIUM_ARGS, NO_HORIZONTAL_SCROLL, VIEWPORT, require_chromium
from tests.conftest import Chat
from tests.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

RUN = secrets.token_hex(3)
PASSWORD = "unanswered-pass-42"
TIMEOUT_MS = 20_000
SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"
# Things residents ask that no city service covers (out of scope in their own words), one phone number
# among them, and one question the assistant does serve.
ASKED = ["你有男朋友没", "你有没有男朋友啊", "给我讲个笑话", "讲个笑话吧", "帮我看看13912345678这个号是谁的"]
SERVED = "12路公交车到哪了"
UNSERVED_REPLY = re.compile(r"^(抱歉|没太明白|与“)")
UNLABELLED = """() => [...document.querySelectorAll('#view input, #view select, #view textarea')]
    .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.getAttribute('aria-labelledby'))
    .map(c => c.id || c.name || c.outerHTML.slice(0, 60))"""


@dataclass
class World:
    stack: Stack
    admin: str
    viewer: str
    unserved: list[str]  # what citizens asked that the assistant answered with a no or a guess


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def world(stacks) -> World:
    stack: Stack = stacks["sqlite"]
    admin, viewer = f"admin_q_{RUN}", f"viewer_q_{RUN}"
    with stack.db() as db:
        for username, role in ((admin, "admin"), (viewer, "viewer")):
            db.add(
                StaffUser(
                    username=username, display_name=f"测试{role}", password_hash=hash_password(PASSWORD), role=role
                )
            )
        db.commit()
    unserved = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        for text in [*ASKED, SERVED]:
            chat = Chat(http, stack)  # a resident each: fresh conversations
            replies = await chat.say(text)
            if UNSERVED_REPLY.match(replies[0]["text"]):
                unserved.append(text)
    assert SERVED not in unserved, "the served question was answered"
    assert len(unserved) >= 3, f"Rasa declined too few of {ASKED}: {unserved}"
    return World(stack, admin, viewer, unserved)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(world) -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


async def console(browser: Browser, stack: Stack, username: str) -> tuple[Page, list[str]]:
    context = await browser.new_context(
        viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai", accept_downloads=True
    )
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{stack.url}/staff/")
    await expect(page.locator("body")).to_have_attribute("data-ready", "1")
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await expect(page.locator("#who-name")).to_be_visible()
    return page, errors


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


async def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot at the phone's size, checked to be a real rendering."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(shot), full_page=True)
    width, height = png_size(shot)
    assert width == VIEWPORT["width"] and height >= VIEWPORT["height"] // 2
    assert shot.stat().st_size > 10_000, f"the {name} screenshot looks blank"
    return shot


async def test_the_gateway_kept_exactly_the_questions_the_bot_could_not_serve(world: World) -> None:
    with world.stack.db() as db:
        rows = db.exec(
            select(UnansweredQuestion, Message.text).join(
                Message, col(Message.id) == col(UnansweredQuestion.message_id)
            )
        ).all()
    kept = {text for _, text in rows}
    assert set(world.unserved) <= kept
    assert SERVED not in kept
    assert all("13912345678" not in q.text for q, _ in rows), "numbers are masked in what staff read"


async def test_admin_groups_assigns_and_exports(browser: Browser, world: World) -> None:
    page, errors = await console(browser, world.stack, world.admin)
    try:
        await page.get_by_role("link", name="未解答问题").click()
        table = page.locator("#unanswered-table")
        for text in world.unserved:
            if "139" not in text:
                await expect(table).to_contain_text(text)
        body = await page.locator("#view").inner_text()
        assert "13912345678" not in body.replace(" ", ""), "the page shows the phone number unmasked"
        assert await page.evaluate(NO_HORIZONTAL_SCROLL), "the page scrolls sideways on a phone"
        assert await page.evaluate(UNLABELLED) == [], "every control has a label"
        await screenshot(page, "unanswered")

        joke = next(t for t in world.unserved if "笑话" in t or "男朋友" in t)
        row = table.locator("tbody tr", has_text=joke).first
        await row.locator("select.assign-target").select_option("out_of_scope")
        await row.get_by_role("button", name="归入").click()
        await expect(page.locator("#flash")).to_contain_text("不属于服务范围")
        await expect(table.locator("tbody tr", has_text=joke)).to_have_count(0)

        await page.get_by_label("显示").select_option("assigned")
        assigned_row = page.locator("#unanswered-table tbody tr", has_text=joke).first
        await expect(assigned_row).to_contain_text("不属于服务范围")

        async with page.expect_download() as download_info:
            await page.locator("#unanswered-export").click()
        download = await download_info.value
        assert download.suggested_filename.endswith(".yaml")
        saved = Path(await download.path())
        examples = yaml.safe_load(await asyncio.to_thread(saved.read_text, encoding="utf-8"))
        assert joke in examples["out_of_scope"]
    finally:
        await page.context.close()
    assert not errors, f"JavaScript errors on the console page: {errors}"


async def test_a_viewer_reads_the_page_without_assigning(browser: Browser, world: World) -> None:
    page, errors = await console(browser, world.stack, world.viewer)
    try:
        assert "未解答问题" in await page.locator("#nav a").all_inner_texts()
        await page.get_by_role("link", name="未解答问题").click()
        await expect(page.locator("#unanswered-table")).to_be_visible()
        await expect(page.locator("select.assign-target")).to_have_count(0)
        await expect(page.locator("#unanswered-export")).to_have_count(0)
    finally:
        await page.context.close()
    assert not errors, f"JavaScript errors on the console page: {errors}"


IMAGES_DRAWN = """() => [...document.querySelectorAll('#dashboard img')]
    .map(img => img.complete && img.naturalWidth > 0)"""


async def test_dashboard_shows_the_days_messages_in_chart_table_and_csv(browser: Browser, world: World) -> None:
    page, errors = await console(browser, world.stack, world.viewer)
    try:
        await page.get_by_role("link", name="数据看板").click()
        messages = page.locator("#dash-messages-table")
        await expect(messages).to_contain_text("网页聊天")
        today = await page.locator("#dash-end").input_value()
        row = messages.locator("tbody tr", has_text=today)
        total = int((await row.locator("td").last.inner_text()).strip())
        assert total >= len(ASKED) + 1, f"today's row counts the residents' {len(ASKED) + 1} messages: {total}"
        await expect(page.locator("#dash-delivery-table")).to_be_visible()
        await page.wait_for_function(f"({IMAGES_DRAWN})().length === 2 && ({IMAGES_DRAWN})().every(Boolean)")
        assert await page.evaluate(NO_HORIZONTAL_SCROLL), "the dashboard scrolls sideways on a phone"
        assert await page.evaluate(UNLABELLED) == [], "every control has a label"
        await screenshot(page, "dashboard")

        # one day only: the table has that day's row alone
        await page.get_by_label("开始日期").fill(today)
        await page.get_by_role("button", name="查看").click()
        await expect(messages.locator("tbody tr")).to_have_count(1)
        # a backwards range: the server's reason, in Chinese
        await page.get_by_label("开始日期").fill("2026-12-31")
        await page.get_by_label("结束日期").fill("2026-01-01")
        await page.get_by_role("button", name="查看").click()
        await expect(page.locator("#dash-error")).to_contain_text("开始日期不能晚于结束日期")

        async with page.expect_download() as download_info:
            await page.locator("#dash-messages-csv").click()
        download = await download_info.value
        saved = Path(await download.path())
        text = await asyncio.to_thread(saved.read_text, encoding="utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0][0] == "日期" and rows[0][-1] == "合计" and rows[1][0] == today
    finally:
        await page.context.close()
    assert not errors, f"JavaScript errors on the console page: {errors}"
