"""The staff console (/staff/) in a real browser (Debian's Chromium, driven by Playwright) against the
real running system: gateway, broadcast engine, dispatcher and the stack's local Twilio server.

The issue's scenario: a broadcaster composes an emergency broadcast for one district, previews it
(recipient counts, segments, cost), submits it; an approver, in a second browser, approves it; the
broadcaster watches the progress reach every recipient and reads the per-recipient status. Also: a
school's staff notify one class, see which parents acknowledged (parents text "收到" through the
signed Twilio webhook) and remind the others; a viewer sees no compose or approve buttons; a wrong
password shows the server's Chinese error; an admin manages users and reads the audit log.

Staff accounts, a few hundred residents of one district, and a school with classes, students and
parents are inserted straight into the stack's database; every name carries this run's RUN tag, so
the tests can share a stack with other test files. Needs /usr/bin/chromium (never downloaded here).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright, expect
from sqlalchemy import func
from sqlmodel import col, select
from twilio.request_validator import RequestValidator

from channels.sms.segments import segment_count
from gateway.db.models import (
    AuditLog,
    Broadcast,
    BroadcastRecipient,
    ChannelIdentity,
    Citizen,
    Community,
    District,
    Guardian,
    School,
    SchoolClass,
    StaffUser,
    Student,
    Subscription,
    utcnow,
)
from gateway.demo import TWILIO
from gateway.staff.passwords import hash_password
from tests.browser import CHROMIUM, CHROMIUM_ARGS, NO_HORIZONTAL_SCROLL, VIEWPORT, require_chromium
from tests.stack import Stack

TIMEOUT_MS = 20_000
DELIVERY_TIMEOUT_MS = 90_000  # a few hundred SMS through the dispatcher and Twilio's status callbacks

RUN = secrets.token_hex(3)
PASSWORD = "console-pass-42"
RESIDENTS = 300
WECHAT_RESIDENTS = 20  # of RESIDENTS: they prefer WeChat and have an openid
FAILING = 2  # SMS residents whose first send Twilio refuses (21211): 重试失败 sends them again
PARENTS_PER_CLASS = 5
ACKING_PARENTS = 2

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

# Form controls a screen reader could not name.
UNLABELLED = """() => [...document.querySelectorAll('#view input, #view select, #view textarea')]
    .filter(c => !(c.labels && c.labels.length) && !c.getAttribute('aria-label') && !c.getAttribute('aria-labelledby'))
    .map(c => c.id || c.name || c.outerHTML.slice(0, 60))"""
CHINESE = re.compile(r"[\u4e00-\u9fff]")
FULL_PHONE = re.compile(r"1[3-9]\d{9}")


# --- the people: staff, residents, a school --------------------------------------------------------


@dataclass
class World:
    stack: Stack
    district_id: str
    district_name: str
    communities: list[tuple[str, str]]  # (id, name) of two of the district's communities
    phones: list[str]  # the district's SMS residents made here
    failing: list[str]  # of phones: the first send to these fails
    staff: dict[str, str]  # role → username
    school_id: str
    class_id: str  # the class that gets the notice
    class_name: str
    parents: list[str] = field(default_factory=list)  # phones of that class's parents


def _phone(block: int, n: int) -> str:
    return f"+86170{block:04d}{n:04d}"


@pytest.fixture(scope="module")
def world(stacks) -> World:
    stack: Stack = stacks["sqlite"]
    block = secrets.randbelow(10_000)
    with stack.db() as db:
        district = db.exec(select(District).order_by(col(District.id).desc())).first()
        assert district is not None, "the city data pack seeds the districts"
        communities = db.exec(select(Community).where(Community.district_id == district.id)).all()
        assert communities, f"{district.name} has communities"
        district_id, district_name = district.id, district.name
        picked = [(c.id, c.name) for c in communities[:2]]

        staff = {role: f"{role}_{RUN}" for role in ("admin", "broadcaster", "approver", "viewer", "school")}
        school_id = f"S{RUN}"
        db.add(School(id=school_id, name=f"测试实验小学{RUN}", district_id=district.id))
        db.flush()
        password_hash = hash_password(PASSWORD)
        for role, username in staff.items():
            db.add(
                StaffUser(
                    username=username,
                    display_name=f"测试{role}",
                    password_hash=password_hash,
                    role=role,
                    school_id=school_id if role == "school" else None,
                )
            )

        phones: list[str] = []
        for n in range(RESIDENTS):
            community = communities[n % len(communities)]
            wechat = n < WECHAT_RESIDENTS
            phone = _phone(block, n)
            citizen = Citizen(phone=phone, community_id=community.id, preferred_channel="wechat" if wechat else "sms")
            db.add(citizen)
            db.flush()
            db.add(ChannelIdentity(channel="sms", address=phone, citizen_id=citizen.id))
            if wechat:
                db.add(ChannelIdentity(channel="wechat", address=f"oT{RUN}{n:06d}x", citizen_id=citizen.id))
            else:
                phones.append(phone)

        classes = [(3, 1), (3, 2), (4, 1)]
        for grade, number in classes:
            db.add(
                SchoolClass(
                    id=f"{school_id}-{grade}-{number}",
                    school_id=school_id,
                    grade=grade,
                    name=f"{'三四'[grade - 3]}年级{number}班",
                )
            )
        db.flush()
        parents_by_class: dict[str, list[str]] = {}
        n = 5000
        for grade, number in classes:
            class_id = f"{school_id}-{grade}-{number}"
            for s in range(PARENTS_PER_CLASS):
                student = Student(id=f"{class_id}-{s:02d}", name=f"学生{grade}{number}{s}", class_id=class_id)
                db.add(student)
                phone = _phone(block, n)
                n += 1
                parent = Citizen(phone=phone)
                db.add(parent)
                db.flush()
                db.add(ChannelIdentity(channel="sms", address=phone, citizen_id=parent.id))
                db.add(Guardian(student_id=student.id, citizen_id=parent.id, relation="家长", verified=True))
                parents_by_class.setdefault(class_id, []).append(phone)
        db.commit()

    chosen = f"{school_id}-3-1"
    return World(
        stack=stack,
        district_id=district_id,
        district_name=district_name,
        communities=picked,
        phones=phones,
        failing=phones[:FAILING],
        staff=staff,
        school_id=school_id,
        class_id=chosen,
        class_name="三年级1班",
        parents=parents_by_class[chosen],
    )


def reach(
    stack: Stack,
    district_id: str | None = None,
    community_ids: list[str] | None = None,
    topic: str | None = None,
    emergency: bool = True,
) -> dict[str, int]:
    """Who a broadcast reaches, by the spec's rule: WeChat when preferred and bound, else SMS to the
    phone (not to those who opted out of SMS, unless it is an emergency), else nobody."""
    query = select(Citizen)
    if district_id is not None or community_ids is not None:
        query = query.join(Community, col(Citizen.community_id) == col(Community.id))
    if district_id is not None:
        query = query.where(Community.district_id == district_id)
    if community_ids is not None:
        query = query.where(col(Community.id).in_(community_ids))
    if topic is not None:
        query = query.join(Subscription, col(Subscription.citizen_id) == col(Citizen.id)).where(
            Subscription.topic == topic
        )
    with stack.db() as db:
        citizens = db.exec(query).all()
        wechat_ids = set(
            db.exec(
                select(ChannelIdentity.citizen_id).where(
                    ChannelIdentity.channel == "wechat",
                    col(ChannelIdentity.citizen_id).in_([c.id for c in citizens]),
                )
            ).all()
        )
    sms = wechat = 0
    for citizen in citizens:
        if citizen.preferred_channel == "wechat" and citizen.id in wechat_ids:
            wechat += 1
        elif citizen.phone and (emergency or not citizen.sms_opted_out):
            sms += 1
    return {"sms": sms, "wechat": wechat, "total": sms + wechat}


# --- browsers ---------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(world) -> AsyncIterator[Browser]:
    require_chromium()
    await require_staff_api(world.stack)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        await browser.close()


async def require_staff_api(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/api/staff/me") as response:
        if response.status == 404:
            pytest.fail("the staff API does not answer /api/staff/me on the running gateway")
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/staff/") as response:
        assert response.status == 200, "the gateway serves the console at /staff/"


@asynccontextmanager
async def console(browser: Browser, stack: Stack, username: str | None = None) -> AsyncIterator[Page]:
    """A staff member's own browser (own cookies), signed in when a username is given."""
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"{stack.url}/staff/")
        await expect(page.locator("body")).to_have_attribute("data-ready", "1")
        if username:
            await sign_in(page, username)
        yield page
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the console page: {errors}"


async def sign_in(page: Page, username: str, password: str = PASSWORD) -> None:
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(password)
    await page.get_by_role("button", name="登录").click()
    await expect(page.locator("#who-name")).to_be_visible()


async def progress(page: Page) -> dict[str, int]:
    return await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#progress .bar-row')]
            .map(r => [r.dataset.key, Number(r.dataset.count)]))"""
    )


async def sms_to(stack: Stack, number: str) -> list[dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{stack.twilio_url}/_control/messages", params={"to": number}) as response,
    ):
        return (await response.json())["messages"]


async def wait_for_sms(stack: Stack, number: str, count: int, timeout_s: float = 30) -> list[dict]:
    for _ in range(int(timeout_s * 5)):
        messages = await sms_to(stack, number)
        if len(messages) >= count:
            return messages
        await asyncio.sleep(0.2)
    raise AssertionError(f"{number[:6]}… got {len(messages)} SMS, expected {count}")


async def text_gateway(stack: Stack, number: str, body: str) -> None:
    """A parent's SMS into the gateway, as Twilio posts it, signed with the account's auth token."""
    url = f"{stack.url}/channels/twilio/sms"
    form = {"MessageSid": f"SM{secrets.token_hex(16)}", "AccountSid": TWILIO["twilio_account_sid"], "From": number}
    form.update(To="+8610690000123", Body=body, NumMedia="0")
    signature = RequestValidator(TWILIO["twilio_auth_token"]).compute_signature(url, form)
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response,
    ):
        assert response.status == 200, await response.text()


def acked(stack: Stack, notice_id: int, number: str) -> bool:
    with stack.db() as db:
        row = db.exec(
            select(BroadcastRecipient).where(
                BroadcastRecipient.broadcast_id == notice_id, BroadcastRecipient.address == number
            )
        ).one()
        return row.acked_at is not None


async def acknowledge(stack: Stack, notice_id: int, number: str, wait_s: float) -> bool:
    """A parent texts "收到". True when the gateway recorded the acknowledgement within wait_s;
    otherwise it is written to the database, as the gateway would, and False is returned."""
    await text_gateway(stack, number, "收到")
    for _ in range(int(wait_s * 5)):
        if acked(stack, notice_id, number):
            return True
        await asyncio.sleep(0.2)
    with stack.db() as db:
        row = db.exec(
            select(BroadcastRecipient).where(
                BroadcastRecipient.broadcast_id == notice_id, BroadcastRecipient.address == number
            )
        ).one()
        row.acked_at = utcnow()
        db.add(row)
        db.commit()
    return False


async def twilio_refuses_once(stack: Stack, number: str) -> None:
    fault = {"to": number, "status": 400, "code": 21211, "times": 1, "message": "Invalid 'To' Phone Number"}
    async with aiohttp.ClientSession() as http, http.post(f"{stack.twilio_url}/_control/faults", json=fault) as r:
        assert r.status == 201, await r.text()


# --- the tests ----------------------------------------------------------------------------------------


async def test_wrong_password_shows_the_chinese_error(browser: Browser, world: World) -> None:
    async with console(browser, world.stack) as page:
        await expect(page).to_have_url(re.compile(r"#/login$"))
        await expect(page.locator("#nav")).to_be_hidden()
        await page.get_by_label("用户名").fill(world.staff["viewer"])
        await page.get_by_label("密码").fill("not-the-password")
        async with page.expect_response("**/api/staff/login") as answer:
            await page.get_by_role("button", name="登录").click()
        response = await answer.value
        assert response.status in (400, 401, 403), response.status
        server_error = (await response.json())["error"]
        assert CHINESE.search(server_error), f"the server's error is not in Chinese: {server_error!r}"
        error = page.locator("#login-error")
        await expect(error).to_be_visible()
        await expect(error).to_have_text(server_error)
        assert await error.get_attribute("role") == "alert"
        await expect(page.get_by_label("密码")).to_have_value("")  # the wrong password is not kept
        await expect(page.locator("#who")).to_be_hidden()

        await sign_in(page, world.staff["viewer"])  # and the right one opens the console
        await expect(page).to_have_url(re.compile(r"#/broadcasts$"))


async def test_emergency_broadcast_from_compose_to_delivery(browser: Browser, world: World, tmp_path: Path) -> None:
    stack = world.stack
    title = f"大风沙尘暴红色预警 {RUN}"
    body = (
        "气象台发布大风沙尘暴红色预警：今天下午至夜间我市将出现十级以上大风并伴有强沙尘暴，能见度低于五十米。"
        "请关好门窗，非必要不外出，户外作业立即停止，驾车减速慢行。"
    )
    expected = reach(stack, district_id=world.district_id)
    assert expected["sms"] >= len(world.phones) and expected["wechat"] >= WECHAT_RESIDENTS

    async with console(browser, stack, world.staff["broadcaster"]) as author:
        await expect(author).to_have_url(re.compile(r"#/broadcasts$"))
        await expect(author.locator("#nav")).not_to_contain_text("用户管理")
        await author.locator("#new-broadcast").click()
        await expect(author.get_by_role("heading", name="新建广播")).to_be_visible()

        await expect(author.get_by_label("预警（需审批后发送）")).to_be_checked()
        assert await author.evaluate(UNLABELLED) == [], "every form control has a label"
        await author.get_by_label("标题").fill(title)
        await author.get_by_label("内容").fill(body)
        counter = author.locator("#body-count")
        await expect(counter).to_have_attribute("data-chars", str(len(body)))
        await expect(counter).to_contain_text(f"{len(body)}/500 字")
        # Counted as it will go out, 【签名】【标题】内容: the title now, the signature once the preview tells it.
        await expect(counter).to_contain_text(f"短信约 {segment_count(f'【{title}】{body}')} 段")
        assert await author.locator("#submit").is_disabled(), "提交 waits for a preview"

        await author.get_by_role("radio", name="区", exact=True).check()
        await author.get_by_role("checkbox", name=world.district_name, exact=True).check()
        await author.get_by_role("button", name="预览").click()

        preview = author.locator("#preview-result")
        await expect(preview).to_be_visible()
        await expect(author.locator("#pv-total")).to_have_attribute("data-value", str(expected["total"]))
        await expect(author.locator("#pv-sms")).to_have_attribute("data-value", str(expected["sms"]))
        await expect(author.locator("#pv-wechat")).to_have_attribute("data-value", str(expected["wechat"]))
        await expect(author.locator("#pv-total")).to_have_text(f"{expected['total']} 人")
        sms_text = await author.locator("#pv-text").inner_text()
        assert f"【{title}】{body}" in sms_text, "the preview shows the SMS as it will go out"
        segments = segment_count(sms_text)
        await expect(author.locator("#pv-segments")).to_have_attribute("data-value", str(segments))
        cost = float(await author.locator("#pv-cost").get_attribute("data-value"))
        assert cost == pytest.approx(expected["sms"] * segments * 0.045, abs=0.01)
        await expect(author.locator("#pv-cost")).to_have_text(f"¥{cost:.2f}")
        await expect(author.locator("#pv-quiet")).to_have_count(0)  # 10:00 is not in quiet hours
        # The live count now includes the signature as well.
        await expect(counter).to_contain_text(f"短信约 {segments} 段")

        # Twilio refuses the first send to two residents: they end "failed" until 重试失败.
        for number in world.failing:
            await twilio_refuses_once(stack, number)

        # A double click is one broadcast: the page sends one idempotency key per compose.
        await expect(author.locator("#submit")).to_be_enabled()
        await author.locator("#submit").dblclick()
        await expect(author).to_have_url(re.compile(r"#/broadcasts/\d+$"))
        broadcast_id = int(author.url.rsplit("/", 1)[1])
        with stack.db() as db:
            rows = db.exec(select(Broadcast).where(Broadcast.title == title)).all()
        assert [b.id for b in rows] == [broadcast_id], "one broadcast for one compose"
        assert rows[0].status == "pending_approval" and rows[0].kind == "emergency"
        assert rows[0].audience == {"type": "districts", "ids": [world.district_id]}

        await expect(author.locator("#broadcast-title")).to_have_text(title)
        await expect(author.locator(".status[data-status=pending_approval]")).to_be_visible()
        await expect(author.locator("#live-status")).to_have_text("等待审批")
        await expect(author.locator("#approve")).to_have_count(0)  # a broadcaster cannot approve
        await expect(author.locator("#cancel")).to_be_visible()

        # The approver, in another browser, finds it in the list and approves it.
        async with console(browser, stack, world.staff["approver"]) as approver:
            await expect(approver.locator("#new-broadcast")).to_have_count(0)
            row = approver.locator("#broadcasts-table tr", has_text=title)
            await expect(row.locator(".status")).to_have_text("待审批")
            await row.get_by_role("link", name=title).click()
            await expect(approver.locator("#broadcast-title")).to_have_text(title)
            await expect(approver.locator("#cancel")).to_have_count(0)  # approvers do not cancel
            await approver.get_by_role("button", name="审批").click()
            await expect(approver.locator("#flash")).to_contain_text("已审批")
            await expect(approver.locator("#approve")).to_have_count(0)
            await expect(approver.locator(".status[data-status=pending_approval]")).to_have_count(0)
            await expect(approver.locator("dl.facts")).to_contain_text("测试broadcaster")  # colleagues by name

        # The author's page follows it by itself: every resident reached but the two Twilio refused.
        total = expected["total"]
        await author.wait_for_function(
            """([total, failing]) => {
                const c = k => Number(document.querySelector(`#progress .bar-row[data-key=${k}]`)?.dataset.count ?? -1);
                return document.querySelector('#live-status')?.dataset.status === 'completed'
                    && Number(document.querySelector('#progress').dataset.total) === total
                    && c('queued') === 0 && c('failed') === failing
                    && c('sent') + c('delivered') + c('failed') === total;
            }""",
            arg=[total, FAILING],
            timeout=DELIVERY_TIMEOUT_MS,
        )
        await expect(author.locator(".status[data-status=completed]")).to_be_visible()
        await expect(author.locator("dl.facts")).to_contain_text("测试approver")
        await expect(author.locator("#cancel")).to_have_count(0)
        await author.get_by_label("状态").select_option(label="失败/未送达")
        await expect(author.locator("#recipients-table tbody tr")).to_have_count(FAILING)
        await expect(author.locator("#recipients-table")).to_contain_text("Twilio HTTP 400")  # the reason

        # 重试失败 sends the two again; this time Twilio takes them.
        await author.get_by_role("button", name=f"重试失败（{FAILING}）").click()
        await expect(author.locator("#flash")).to_contain_text(f"已重新发送 {FAILING} 条")
        await author.wait_for_function(
            """total => {
                const c = k => Number(document.querySelector(`#progress .bar-row[data-key=${k}]`)?.dataset.count ?? -1);
                return c('queued') === 0 && c('failed') === 0 && c('sent') + c('delivered') === total;
            }""",
            arg=total,
            timeout=DELIVERY_TIMEOUT_MS,
        )
        await expect(author.locator("#retry")).to_have_count(0)
        await expect(author.locator("#recipients-table tbody tr")).to_have_text(["没有此状态的收件人"])

        # The residents got it: the SMS Twilio was asked to deliver carries the body.
        for number in (world.phones[-1], *world.failing):
            messages = await wait_for_sms(stack, number, 1)
            assert body in messages[-1]["body"]
        with stack.db() as db:
            statuses = dict(
                db.exec(
                    select(BroadcastRecipient.channel, func.count())
                    .where(BroadcastRecipient.broadcast_id == broadcast_id)
                    .group_by(BroadcastRecipient.channel)
                ).all()
            )
            outcomes = set(
                db.exec(select(BroadcastRecipient.status).where(BroadcastRecipient.broadcast_id == broadcast_id)).all()
            )
        assert statuses == {"sms": expected["sms"], "wechat": expected["wechat"]}, statuses
        assert outcomes <= {"sent", "delivered"}, outcomes

        # Per-recipient status: 50 a page, filterable, addresses masked.
        counts = await progress(author)
        recipients = author.locator("#recipients-table tbody tr")
        await author.get_by_label("状态").select_option(label="全部")
        await expect(recipients).to_have_count(50)
        await expect(author.locator("#page-info")).to_have_text(f"第 1 / {-(-total // 50)} 页")
        await expect(author.locator("#page-prev")).to_be_disabled()
        await author.locator("#page-next").click()
        await expect(author.locator("#page-info")).to_have_text(f"第 2 / {-(-total // 50)} 页")
        await expect(author.locator("#page-prev")).to_be_enabled()
        await author.get_by_label("状态").select_option(label="已发送")
        await expect(recipients).to_have_count(min(50, counts["sent"]))
        await expect(author.locator("#recipients-table tbody")).to_contain_text("微信")
        await author.get_by_label("状态").select_option(label="已送达")
        await expect(author.locator("#recipients-table .rstatus").first).to_have_text("已送达")
        await expect(author.locator("#page-info")).to_have_text(f"第 1 / {-(-counts['delivered'] // 50)} 页")
        table_text = await author.locator("#recipients-table").inner_text()
        assert not FULL_PHONE.search(table_text.replace(" ", "")), "recipient phone numbers are masked"

        await author.get_by_label("状态").select_option(label="全部")
        await expect(recipients).to_have_count(50)
        assert await author.evaluate(NO_HORIZONTAL_SCROLL), "the detail page scrolls sideways on a phone"
        shot = tmp_path / "broadcast-detail.png"
        await author.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000


async def test_compose_audiences_upload_and_server_errors(browser: Browser, world: World) -> None:
    good = world.phones[10:13]
    pasted = "\n".join([good[0], "12345", good[1].removeprefix("+86"), "电话号码", good[2]])
    async with console(browser, world.stack, world.staff["broadcaster"]) as page:
        await page.goto(f"{world.stack.url}/staff/#/broadcasts/new")
        await page.get_by_label("通知", exact=True).check()
        await page.get_by_label("内容").fill("社区今晚二十点在活动中心开展消防演练，请居民配合。")

        # 社区: the district's communities fold open; the preview counts their residents.
        await page.get_by_role("radio", name="社区").check()
        await page.locator("#aud-communities summary", has_text=world.district_name).click()
        for _, name in world.communities:
            await page.get_by_role("checkbox", name=name, exact=True).check()
        await page.get_by_role("button", name="预览").click()
        expected = reach(world.stack, community_ids=[cid for cid, _ in world.communities], emergency=False)
        await expect(page.locator("#pv-total")).to_have_attribute("data-value", str(expected["total"]))
        await expect(page.locator("#pv-wechat")).to_have_attribute("data-value", str(expected["wechat"]))

        # 订阅主题: the topics come from the server; the preview counts their subscribers.
        await page.get_by_role("radio", name="订阅主题").check()
        topic = page.locator("#aud-topics input[type=checkbox]").first
        expected = reach(world.stack, topic=await topic.get_attribute("value"), emergency=False)
        await topic.check()
        await page.get_by_role("button", name="预览").click()
        if expected["total"]:
            await expect(page.locator("#pv-total")).to_have_attribute("data-value", str(expected["total"]))
        else:  # nobody to send to: the server's reason, in Chinese, and nothing to submit
            await expect(page.locator("#compose-error")).to_be_visible()
            assert CHINESE.search(await page.locator("#compose-error").inner_text())
            await expect(page.locator("#submit")).to_be_disabled()

        # A district that does not exist (an out-of-date page): the server's reason shows in Chinese.
        await page.get_by_role("radio", name="区", exact=True).check()
        await page.evaluate(
            """() => { const box = document.querySelector('#aud-districts input[type=checkbox]');
                       box.value = 'no-such-district'; box.checked = true; }"""
        )
        await page.get_by_role("button", name="预览").click()
        await expect(page.locator("#compose-error")).to_contain_text("no-such-district")
        assert CHINESE.search(await page.locator("#compose-error").inner_text())
        await expect(page.locator("#submit")).to_be_disabled()

        # 上传号码: the server names the lines it cannot use.
        await page.get_by_role("radio", name="上传号码").check()
        await page.get_by_label("手机号码").fill(pasted)
        async with page.expect_response("**/api/staff/broadcasts/upload") as answer:
            await page.get_by_role("button", name="检查号码").click()
        checked = await (await answer.value).json()
        assert len(checked["valid"]) == 3, checked
        await expect(page.locator("#phones-summary")).to_contain_text("有效号码 3 个")
        bad = page.locator("#bad-lines tbody tr")
        await expect(bad).to_have_count(len(checked["errors"]))
        assert {e["line"] for e in checked["errors"]} == {2, 4}
        await expect(bad.first).to_contain_text("12345")
        await expect(bad.last).to_contain_text("电话号码")

        await page.get_by_role("button", name="预览").click()
        await expect(page.locator("#pv-total")).to_have_attribute("data-value", "3")
        # Editing the body makes the preview stale: 提交 waits for a new one.
        await page.get_by_label("内容").fill("小区今晚二十二点起停水检修，预计次日六点恢复。")
        await expect(page.locator("#submit")).to_be_disabled()
        await expect(page.locator("#preview-stale")).to_be_visible()


async def test_scheduled_notice_waits_and_can_be_cancelled(browser: Browser, world: World) -> None:
    stack = world.stack
    title = f"道路施工通知 {RUN}"
    numbers = world.phones[20:22]
    async with console(browser, stack, world.staff["broadcaster"]) as page:
        await page.goto(f"{stack.url}/staff/#/broadcasts/new")
        await page.get_by_label("通知", exact=True).check()
        await page.get_by_label("标题").fill(title)
        await page.get_by_label("内容").fill("下周一起南新路封闭施工一个月，请绕行。")
        await page.get_by_role("radio", name="上传号码").check()
        await page.get_by_label("手机号码").fill("\n".join(numbers))
        await page.get_by_role("radio", name="定时发送").check()
        await page.get_by_label("定时时间").fill("2030-01-07T09:00")
        await page.get_by_role("button", name="预览").click()
        await expect(page.locator("#pv-total")).to_have_attribute("data-value", "2")
        await page.locator("#submit").click()
        await expect(page).to_have_url(re.compile(r"#/broadcasts/\d+$"))

        # A notice needs no approval: it waits for its time (stored as UTC, shown in city time).
        await expect(page.locator(".status[data-status=scheduled]")).to_be_visible()
        await expect(page.locator("#live-status")).to_have_text("已排期，将于 2030-01-07 09:00 发送")
        await expect(page.locator("#approve")).to_have_count(0)
        with stack.db() as db:
            broadcast = db.exec(select(Broadcast).where(Broadcast.title == title)).one()
        assert broadcast.kind == "notice" and broadcast.audience == {"type": "list", "phones": numbers}
        assert (
            broadcast.scheduled_at is not None
            and broadcast.scheduled_at.strftime("%Y-%m-%d %H:%M") == "2030-01-07 01:00"
        )

        # 取消 asks first; declining keeps it, accepting cancels it.
        page.once("dialog", dismiss)
        await page.get_by_role("button", name="取消").click()
        await expect(page.locator(".status[data-status=scheduled]")).to_be_visible()
        page.once("dialog", accept)
        await page.get_by_role("button", name="取消").click()
        await expect(page.locator("#flash")).to_contain_text("广播已取消")
        await expect(page.locator(".status[data-status=cancelled]")).to_be_visible()
        await expect(page.locator("#cancel")).to_have_count(0)
        with stack.db() as db:
            assert db.get(Broadcast, broadcast.id).status == "cancelled"
        for number in numbers:
            assert not any(title in m["body"] or "南新路" in m["body"] for m in await sms_to(stack, number))


async def accept(dialog) -> None:
    await dialog.accept()


async def dismiss(dialog) -> None:
    await dialog.dismiss()


async def test_school_notice_acknowledgements_and_reminder(browser: Browser, world: World) -> None:
    stack = world.stack
    title = f"家长会通知 {RUN}"
    body = "本周五下午四点在本班教室召开家长会，请家长准时参加。收到请回复“收到”。"
    async with console(browser, stack, world.staff["school"]) as page:
        await expect(page).to_have_url(re.compile(r"#/notices$"))
        nav = await page.locator("#nav a").all_inner_texts()
        assert nav == ["学校通知", "新建通知"], nav  # school staff see only their notices
        await page.locator("#new-notice").click()
        await page.get_by_label("标题").fill(title)
        await page.get_by_label("内容").fill(body)
        await page.get_by_role("radio", name="按班级").check()
        await page.get_by_role("checkbox", name=world.class_name).check()
        assert await page.evaluate(UNLABELLED) == [], "every form control has a label"
        await page.get_by_role("button", name="发送通知").click()
        await expect(page).to_have_url(re.compile(r"#/notices/\d+$"))
        await expect(page.locator("#notice-title")).to_have_text(title)

        # Every parent of the class gets the notice; each has a child in it.
        for number in world.parents:
            messages = await wait_for_sms(stack, number, 1)
            assert body in messages[-1]["body"]
        unacked = page.locator("#unacked-table tbody tr")
        await expect(unacked).to_have_count(PARENTS_PER_CLASS)
        await expect(page.locator("#unacked-table")).to_contain_text("学生")
        await expect(page.locator("#acked-table tbody")).to_have_text("还没有家长确认")

        # Two parents answer 收到 by SMS; the page shows who has and who has not acknowledged.
        acking, others = world.parents[:ACKING_PARENTS], world.parents[ACKING_PARENTS:]
        notice_id = int(page.url.rsplit("/", 1)[1])
        by_sms = await acknowledge(stack, notice_id, acking[0], wait_s=15)
        for number in acking[1:]:
            await acknowledge(stack, notice_id, number, wait_s=15 if by_sms else 0)
        if not by_sms:
            warnings.warn("the gateway does not record an SMS 收到 as an acknowledgement: set in the DB", stacklevel=1)
        summary = page.locator("#ack-summary")
        await expect(summary).to_have_attribute("data-acked", str(ACKING_PARENTS), timeout=30_000)
        await expect(summary).to_have_attribute("data-unacked", str(len(others)))
        await expect(page.locator("#acked-table tbody tr")).to_have_count(ACKING_PARENTS)
        await expect(unacked).to_have_count(len(others))
        await expect(page.locator("#count-acked")).to_have_text(str(ACKING_PARENTS))

        # 提醒未确认 reaches only the parents who have not acknowledged.
        await page.get_by_role("button", name=f"提醒未确认（{len(others)}）").click()
        await expect(page.locator("#flash")).to_contain_text(f"已向 {len(others)} 位")
        for number in others:
            await wait_for_sms(stack, number, 2)
        await asyncio.sleep(1)
        for number in acking:
            received = await sms_to(stack, number)
            assert all(body not in m["body"] for m in received[1:]), "an acknowledged parent was reminded"
        await expect(page.locator("#unacked-table tbody")).not_to_contain_text("未提醒")
        assert await page.evaluate(NO_HORIZONTAL_SCROLL)

        # The list shows it with its recipient count.
        await page.get_by_role("link", name="学校通知", exact=True).click()
        row = page.locator("#notices-table tr", has_text=title)
        await expect(row).to_contain_text(f"共 {PARENTS_PER_CLASS}")
        await expect(row.locator(".status")).to_have_text("已完成")


async def test_admin_picks_the_school_a_notice_is_for(browser: Browser, world: World) -> None:
    stack = world.stack
    title = f"停课通知 {RUN}"
    school_id = world.class_id.rsplit("-", 2)[0]
    async with console(browser, stack, world.staff["admin"]) as page:
        await page.get_by_role("link", name="新建通知").click()
        await page.get_by_label("标题").fill(title)  # typed first: switching the school keeps it
        await page.get_by_label("内容").fill("明日因暴雪停课一天，请家长照看好孩子。")
        picker = page.get_by_label("学校")
        await picker.select_option(label=f"测试实验小学{RUN}")
        await page.get_by_role("radio", name="按班级").check()  # the classes are that school's
        await page.get_by_role("checkbox", name="四年级1班").check()
        await expect(page.get_by_label("标题")).to_have_value(title)
        assert await page.evaluate(UNLABELLED) == [], "every form control has a label"
        await page.get_by_role("button", name="发送通知").click()
        await expect(page.locator("#notice-title")).to_have_text(title)
        await expect(page.locator("dl.facts")).to_contain_text("四年级1班")  # the class by name, not its id
    with stack.db() as db:
        notice = db.exec(select(Broadcast).where(Broadcast.title == title)).one()
    assert (notice.kind, notice.school_id) == ("school", school_id)
    assert notice.audience == {"type": "classes", "ids": [f"{school_id}-4-1"]}


async def test_viewer_sees_no_compose_or_approve_buttons(browser: Browser, world: World) -> None:
    stack = world.stack
    with stack.db() as db:
        broadcast = db.exec(select(Broadcast).where(Broadcast.kind != "school").order_by(col(Broadcast.id))).first()
    async with console(browser, stack, world.staff["viewer"]) as page:
        await expect(page.locator("#who-role")).to_have_text("只读")
        assert await page.locator("#nav a").all_inner_texts() == ["广播列表", "数据看板", "未解答问题"]
        await expect(page.locator("#new-broadcast")).to_have_count(0)
        # Typing the compose address leads back to the list.
        await page.goto(f"{stack.url}/staff/#/broadcasts/new")
        await expect(page).to_have_url(re.compile(r"#/broadcasts$"))
        await expect(page.locator("#compose")).to_have_count(0)
        if broadcast is not None:
            await page.goto(f"{stack.url}/staff/#/broadcasts/{broadcast.id}")
            await expect(page.locator("#broadcast-title")).to_have_text(broadcast.title)
            await expect(page.locator("#recipients")).to_be_visible()
            for action in ("#approve", "#cancel", "#retry"):
                await expect(page.locator(action)).to_have_count(0)
        await page.goto(f"{stack.url}/staff/#/users")
        await expect(page).to_have_url(re.compile(r"#/broadcasts$"))

        # Signing out ends the session: the console asks for a login again.
        await page.get_by_role("button", name="退出登录").click()
        await expect(page).to_have_url(re.compile(r"#/login$"))
        await expect(page.locator("#nav")).to_be_hidden()


async def test_admin_manages_users_and_reads_the_audit_log(browser: Browser, world: World) -> None:
    stack = world.stack
    newcomer = f"newcomer_{RUN}"
    async with console(browser, stack, world.staff["admin"]) as page:
        nav = await page.locator("#nav a").all_inner_texts()
        assert nav == [
            "广播列表",
            "新建广播",
            "学校通知",
            "新建通知",
            "数据看板",
            "未解答问题",
            "人工服务",
            "用户管理",
            "审计日志",
        ], nav
        await page.get_by_role("link", name="用户管理").click()
        await expect(page.locator("#users-table")).to_contain_text(world.staff["viewer"])
        assert await page.evaluate(UNLABELLED) == [], "every form control has a label"

        # The server's reason for refusing shows in Chinese.
        await page.get_by_label("用户名").fill(newcomer)
        await page.get_by_label("姓名").fill("新同事")
        await page.get_by_label("初始密码").fill("short")
        await page.get_by_label("角色").select_option("approver")
        await page.get_by_role("button", name="添加用户").click()
        await expect(page.locator("#users-error")).to_be_visible()
        assert CHINESE.search(await page.locator("#users-error").inner_text())

        await page.get_by_label("初始密码").fill("a-long-enough-password")
        await page.get_by_role("button", name="添加用户").click()
        await expect(page.locator("#flash")).to_contain_text(f"已添加用户 {newcomer}")
        row = page.locator("#users-table tr", has_text=newcomer)
        await expect(row).to_contain_text("审批员")

        page.once("dialog", accept)
        await row.get_by_role("button", name=f"停用 {newcomer}").click()
        await expect(row).to_contain_text("已停用")
        with stack.db() as db:
            user = db.exec(select(StaffUser).where(StaffUser.username == newcomer)).one()
            assert not user.active
            admin_actions = db.exec(
                select(func.count())
                .select_from(AuditLog)
                .join(StaffUser, col(AuditLog.staff_id) == col(StaffUser.id))
                .where(StaffUser.username == world.staff["admin"])
            ).one()
        assert admin_actions >= 3  # login, create, disable

        await page.get_by_role("link", name="审计日志").click()
        audit = page.locator("#audit-table tbody tr")
        await expect(audit.first).to_be_visible()
        await expect(page.locator("#audit-table")).to_contain_text(world.staff["admin"])
        assert await audit.count() >= 3
        assert await page.evaluate(NO_HORIZONTAL_SCROLL)
