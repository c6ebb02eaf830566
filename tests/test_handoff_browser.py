"""The handoff in two real browsers (Chromium) against the running system: a citizen in the web chat
page asks for a person; an agent in the staff console's 人工服务 view sees the waiting ticket with its
clock, claims it, reads the whole conversation (the bot's turns too), answers from a canned reply; the
answer appears live in the citizen's page; the agent transfers it to a team, claims it again and
closes; the citizen rates, and the bot is back. Then the citizen files a complaint with the bot, and
the agent moves the 12345 work order on."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from gateway.db.models import StaffUser
from gateway.handoff.responders import RATED
from gateway.staff.passwords import hash_password
from tests.browser import NO_HORIZONTAL_SCROLL, VIEWPORT, chromium
from tests.stack import Stack
from tests.test_console_browser import UNLABELLED, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "console-pass-42"
TIMEOUT_MS = 30_000
CANNED = "您好，我是人工客服，请问有什么可以帮您？"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


def agent_account(stack: Stack) -> str:
    username = f"agent_{secrets.token_hex(3)}"
    with stack.db() as db:
        db.add(
            StaffUser(username=username, display_name="客服小李", password_hash=hash_password(PASSWORD), role="agent")
        )
        db.commit()
    return username


async def new_page(browser: Browser, errors: list[str]) -> Page:
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page


async def citizen_says(page: Page, text: str) -> None:
    await page.locator("#input").fill(text)
    await page.locator("#input").press("Enter")
    await expect(page.locator("#messages .msg.user .text").last).to_have_text(text, timeout=TIMEOUT_MS)


async def test_a_web_chat_citizen_and_an_agent_in_the_console(browser: Browser, stacks) -> None:
    stack: Stack = stacks["sqlite"]
    username = agent_account(stack)
    errors: list[str] = []
    citizen, agent = await new_page(browser, errors), await new_page(browser, errors)

    await citizen.goto(stack.url + "/")
    await expect(citizen.locator("#status")).to_have_text("已连接", timeout=TIMEOUT_MS)
    await citizen_says(citizen, "12路公交车到哪了")
    await expect(citizen.locator("#messages .msg.bot").last).to_contain_text("12路", timeout=TIMEOUT_MS)
    await citizen_says(citizen, "转人工")
    told = citizen.locator("#messages .msg.bot").last
    await expect(told).to_contain_text("工单号", timeout=TIMEOUT_MS)
    number = (await told.inner_text()).split("工单号")[1][:10]

    await agent.goto(stack.url + "/staff/")
    await expect(agent.locator("body")).to_have_attribute("data-ready", "1", timeout=TIMEOUT_MS)
    await sign_in(agent, username, PASSWORD)
    await expect(agent).to_have_url(f"{stack.url}/staff/#/handoffs", timeout=TIMEOUT_MS)  # an agent's home: the inbox
    claim = agent.locator(f'[data-claim="{number}"]')
    await expect(claim).to_be_visible(timeout=TIMEOUT_MS)
    row = agent.locator("#waiting-table tr", has=claim)
    await expect(row.locator(".sla")).to_have_attribute("data-sla", "green", timeout=TIMEOUT_MS)
    await claim.click()
    await expect(agent.locator("#handoff-head h1")).to_have_text(f"工单 {number}", timeout=TIMEOUT_MS)
    transcript = agent.locator("#transcript")
    await expect(transcript.locator('[data-kind="in"]').first).to_contain_text("12路公交车到哪了", timeout=TIMEOUT_MS)
    await expect(transcript.locator('[data-kind="out"]').first).to_contain_text("12路", timeout=TIMEOUT_MS)  # the bot's

    await citizen_says(citizen, "我家门口的路灯坏了")
    await expect(transcript.locator('[data-kind="in"]').last).to_contain_text("我家门口的路灯坏了", timeout=TIMEOUT_MS)
    await agent.locator("#canned").select_option(CANNED)
    await expect(agent.locator("#reply-text")).to_have_value(CANNED, timeout=TIMEOUT_MS)
    await agent.get_by_role("button", name="发送").click()
    await expect(citizen.locator("#messages .msg.bot").last).to_contain_text(CANNED, timeout=TIMEOUT_MS)
    await expect(transcript.locator('[data-kind="agent"]').last).to_contain_text(CANNED, timeout=TIMEOUT_MS)
    assert await agent.evaluate(UNLABELLED) == []
    assert await agent.evaluate(NO_HORIZONTAL_SCROLL)

    # Transferred to the general desk it waits again; claimed again, the transfer shows in the log.
    await agent.locator("#transfer-to").select_option("team:general")
    await agent.get_by_role("button", name="转交", exact=True).click()
    await expect(agent).to_have_url(f"{stack.url}/staff/#/handoffs", timeout=TIMEOUT_MS)
    await agent.locator(f'[data-claim="{number}"]').click()
    await expect(agent.locator("#handoff-head h1")).to_have_text(f"工单 {number}", timeout=TIMEOUT_MS)
    await expect(transcript.locator('[data-kind="transfer"]')).to_contain_text("转给综合组", timeout=TIMEOUT_MS)

    await agent.locator("#close-category").select_option("求助")
    await agent.locator("#close-resolution").fill("已报路灯管理所维修")
    await agent.get_by_role("button", name="结束服务").click()
    await expect(citizen.locator("#messages .msg.bot").last).to_contain_text("回复1到5", timeout=TIMEOUT_MS)
    await expect(agent.locator("#handoff-actions")).to_contain_text("已结束", timeout=TIMEOUT_MS)
    await citizen_says(citizen, "5")
    await expect(citizen.locator("#messages .msg.bot .text").last).to_have_text(RATED, timeout=TIMEOUT_MS)
    await citizen_says(citizen, "14路公交车到哪了")
    await expect(citizen.locator("#messages .msg.bot").last).to_contain_text("14路", timeout=TIMEOUT_MS)

    # A complaint becomes a 12345 work order in the same inbox; moving it on tells the citizen.
    await citizen_says(citizen, "我要投诉，小区楼下商贩占道经营，人都走不过去")
    await expect(citizen.locator("#messages .msg.bot").last).to_contain_text("请确认提交", timeout=TIMEOUT_MS)
    await citizen_says(citizen, "确认")
    filed = citizen.locator("#messages .msg.bot").last
    await expect(filed).to_contain_text("受理编号", timeout=TIMEOUT_MS)
    ref = (await filed.inner_text()).split("受理编号 ")[1][:12]
    await agent.goto(f"{stack.url}/staff/#/handoffs")
    await agent.locator(f'[data-order="{ref}"]').click()
    await agent.get_by_label("新状态").select_option("转办")
    await agent.get_by_label("转办单位（转办时必填）").fill("城市管理局")
    await agent.get_by_role("button", name="更新并通知居民").click()
    await expect(citizen.locator("#messages .msg.bot").last).to_contain_text(
        f"{ref}）有新进展：转办", timeout=TIMEOUT_MS
    )
    await expect(agent.locator(f'#workorders-table tr:has([data-order="{ref}"]) [data-status]')).to_have_text(
        "转办", timeout=TIMEOUT_MS
    )
    assert await agent.evaluate(UNLABELLED) == []
    for page in (citizen, agent):
        await page.context.close()
    assert not errors, errors
