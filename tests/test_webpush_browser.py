"""The web chat page's "接收城市通知" control and its service worker in a real browser (Debian's Chromium,
driven by Playwright), against the real gateway app in-process (create_app on a fresh SQLite file, with
tests/fake_rasa.py answering for Rasa) and the local push service.

Headless Chromium cannot reach a push service (and Playwright's contexts are incognito, where Chrome
has no Push API at all), so what is tested is what is real here:
- the page registers /sw.js with the scope of the chat page; subscribing then fails as it does in such
  a browser, and the control says so in Chinese; a citizen who refuses permission is told how to allow it;
- a push delivered to that service worker through the DevTools protocol (ServiceWorker.deliverPushMessage,
  what Chrome's push service would hand it) becomes a notification with the title and body;
- end to end, with the one link a headless browser lacks played by the test (PushManager.subscribe
  answers with a subscription the local push service made, as Chrome's push service would): the page
  hands the subscription to the gateway with its chat session; a broadcaster's preview in the staff
  console counts that citizen under 网页推送 and the notice goes out through the gateway's own runner,
  dispatcher and web push sender; the local push service verifies and decrypts it, and those very
  bytes, delivered to the service worker, show the notice as a notification.

Needs /usr/bin/chromium (never downloaded here)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from channels.webpush.vapid import generate_private_key_pem
from channels.webpush.wire import push_payload
from gateway.app import SETTINGS
from gateway.db.engine import async_engine, session_factory
from gateway.db.models import StaffUser
from gateway.staff.passwords import hash_password
from providers.webpush_api import LocalWebPush
from tests.browser import VIEWPORT, chromium
from tests.fake_rasa import FakeRasa, Gateway, running_gateway

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TIMEOUT_MS = 20_000
SUBJECT = "mailto:citizen-services@karamay.example"
FAILED = "开启通知失败，请稍后再试。"
DENIED = "您拒绝了通知权限"
DONE = "已开启城市通知"
NOTIFICATIONS = """async () => (await (await navigator.serviceWorker.ready).getNotifications())
    .map(n => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url}))"""

# What Chrome's push service would give PushManager.subscribe, made by the local push service instead:
# the page's own code then runs as it would in a browser that can reach one.
BROWSER_PUSH_SERVICE = """(() => {
  let current = null;
  const b64url = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  PushManager.prototype.getSubscription = async function () { return current; };
  PushManager.prototype.subscribe = async function (options) {
    const json = await window.localPushServiceSubscribe(b64url(options.applicationServerKey));
    current = { endpoint: json.endpoint, options: { userVisibleOnly: true, applicationServerKey: options.applicationServerKey },
                toJSON: () => json, unsubscribe: async () => { current = null; return true; } };
    return current;
  };
})();"""


@pytest_asyncio.fixture(loop_scope="session")
async def push() -> AsyncIterator[LocalWebPush]:
    async with LocalWebPush() as service_:
        yield service_


@pytest_asyncio.fixture(loop_scope="session")
async def gateway(template: Path, tmp_path: Path, rasa: FakeRasa, push: LocalWebPush) -> AsyncIterator[Gateway]:
    async with running_gateway(
        template,
        tmp_path,
        rasa,
        webpush_vapid_private_key=generate_private_key_pem(),
        webpush_vapid_subject=SUBJECT,
        webpush_local_origin=push.url,
        fixed_now="2026-11-25T10:00:00",  # outside quiet hours: a notice goes at once
        twilio_account_sid=None,
        wechat_app_id=None,
    ) as gw:
        yield gw


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


def url_of(gateway: Gateway) -> str:
    return str(gateway.client.make_url("/"))


async def chat_page(browser: Browser, gateway: Gateway, notifications: bool) -> tuple[BrowserContext, Page, list[str]]:
    """A new browser profile on the chat page's origin, and the JavaScript errors its page will raise."""
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    if notifications:  # the citizen allows notifications when the browser asks
        await context.grant_permissions(["notifications"], origin=url_of(gateway).rstrip("/"))
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, errors


async def open_chat(page: Page, gateway: Gateway) -> None:
    await page.goto(url_of(gateway))
    await expect(page.locator("#status")).to_have_text("已连接")
    await expect(page.locator("#notify")).to_have_text("接收城市通知")


async def deliver(context: BrowserContext, page: Page, origin: str, data: str) -> list[dict[str, Any]]:
    """Hand a push message to the page's service worker, as Chrome does when its push service delivers
    one, and return the notifications it shows. Headless Chrome now and then drops a push handed over
    this way (the worker activated and running, no error, nothing dispatched: 1 run in ~8 here), so an
    unanswered delivery is repeated once, as a push service re-delivers an unacknowledged message; the
    payload's tag makes a repeat replace its notification, never add a second one."""
    cdp = await context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    versions: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda event: registrations.extend(event["registrations"]))
    cdp.on("ServiceWorker.workerVersionUpdated", lambda event: versions.extend(event["versions"]))
    await cdp.send("ServiceWorker.enable")
    await until(lambda: any(not r["isDeleted"] for r in registrations))
    live = [r for r in registrations if not r["isDeleted"]]
    assert [r["scopeURL"] for r in live] == [f"{origin}/"], "one service worker, covering the chat page"
    registration = live[0]["registrationId"]
    await until(lambda: any(v["registrationId"] == registration and v["status"] == "activated" for v in versions))
    for _ in range(2):
        await cdp.send(
            "ServiceWorker.deliverPushMessage", {"origin": origin, "registrationId": registration, "data": data}
        )
        if notifications := await shown(page, wait_s=4):
            return notifications
    return []


async def shown(page: Page, wait_s: float = 8) -> list[dict[str, Any]]:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        notifications = await page.evaluate(NOTIFICATIONS)
        if notifications:
            return notifications
        await asyncio.sleep(0.1)
    return []


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_the_service_worker_turns_a_push_into_a_notification(browser, gateway):
    context, page, errors = await chat_page(browser, gateway, notifications=True)
    try:
        await open_chat(page, gateway)
        await page.locator("#notify").click()
        # a browser without a reachable push service: registered, permitted, and yet no subscription
        await expect(page.locator("#notify-status")).to_have_text(FAILED)
        await expect(page.locator("#notify-status")).to_have_attribute("data-kind", "error")
        await expect(page.locator("#notify")).to_be_enabled()
        scope = await page.evaluate("async () => (await navigator.serviceWorker.getRegistration('/')).scope")
        origin = url_of(gateway).rstrip("/")
        assert scope == f"{origin}/"
        assert gateway.query("SELECT * FROM webpushsubscription") == []

        payload = push_payload("沙尘暴预警", "今晚有沙尘暴，请关好门窗，减少外出。")
        notifications = await deliver(context, page, origin, payload)
        assert [(n["title"], n["body"]) for n in notifications] == [
            ("沙尘暴预警", "今晚有沙尘暴，请关好门窗，减少外出。")
        ]
        assert notifications[0]["url"] == f"{origin}/" and notifications[0]["tag"] == json.loads(payload)["tag"]
        assert errors == []
    finally:
        await context.close()


async def test_a_citizen_who_refuses_notifications_is_told_how_to_allow_them(browser, gateway):
    context, page, errors = await chat_page(browser, gateway, notifications=False)  # headless answers "denied"
    try:
        await open_chat(page, gateway)
        await page.locator("#notify").click()
        await expect(page.locator("#notify-status")).to_contain_text(DENIED)
        await expect(page.locator("#notify-status")).to_contain_text("浏览器设置")
        assert errors == []
    finally:
        await context.close()


async def test_a_city_notice_reaches_the_subscribed_page_as_a_notification(browser, gateway, push):
    context, page, errors = await chat_page(browser, gateway, notifications=True)
    await page.expose_function("localPushServiceSubscribe", push.subscribe)
    await page.add_init_script(BROWSER_PUSH_SERVICE)
    try:
        await open_chat(page, gateway)
        await page.locator("#notify").click()
        # no conversation yet: the gateway does not know whose subscription it would be
        await expect(page.locator("#notify-status")).to_contain_text("请先向助手发送一条消息")
        await page.locator("#input").fill("你好")
        await page.locator("#input").press("Enter")
        await expect(page.locator("#messages .msg.bot").last).to_contain_text("你好")  # the fake Rasa's echo
        await page.locator("#notify").click()
        await expect(page.locator("#notify-status")).to_have_text(f"{DONE}：紧急预警和通知会推送到本浏览器。")
        await expect(page.locator("#notify")).to_have_text(DONE)

        session = await page.evaluate("document.body.dataset.session")
        (subscription,) = gateway.query(
            "SELECT s.*, c.preferred_channel FROM webpushsubscription s JOIN citizen c ON c.id = s.citizen_id "
            "JOIN channelidentity i ON i.citizen_id = c.id WHERE i.channel = 'webchat' AND i.address = ?",
            session,
        )
        assert subscription["endpoint"].startswith(f"{push.url}/push/")
        assert subscription["preferred_channel"] == "webpush"

        title, body = "停水通知", "明天上午九点至下午五点，白碱滩区部分小区停水，请提前储水。"
        await broadcaster_sends(browser, gateway, title, body)
        await until(lambda: len(push.messages) == 1, timeout=20)
        (message,) = push.messages
        assert message.endpoint == subscription["endpoint"] and message.subject == SUBJECT
        assert (json.loads(message.text)["title"], json.loads(message.text)["body"]) == (title, body)

        notifications = await deliver(context, page, url_of(gateway).rstrip("/"), message.text)
        assert [(n["title"], n["body"]) for n in notifications] == [(title, body)]
        assert errors == []
    finally:
        await context.close()


async def broadcaster_sends(browser: Browser, gateway: Gateway, title: str, body: str) -> None:
    """A broadcaster composes a notice to the whole city in the staff console: its preview counts the
    subscribed citizen under 网页推送; the gateway's own runner and dispatcher take it from there."""
    username, password = f"bob-{uuid.uuid4().hex[:6]}", "console-pass-42"
    engine = async_engine(gateway.app[SETTINGS].database_url)
    try:
        async with session_factory(engine)() as db:
            db.add(
                StaffUser(
                    username=username, display_name="广播员", password_hash=hash_password(password), role="broadcaster"
                )
            )
            await db.commit()
    finally:
        await engine.dispose()
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = await context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        await page.goto(url_of(gateway) + "staff/")
        await page.get_by_label("用户名").fill(username)
        await page.get_by_label("密码").fill(password)
        await page.get_by_role("button", name="登录").click()
        await expect(page.locator("#who-name")).to_be_visible()
        await page.goto(url_of(gateway) + "staff/#/broadcasts/new")
        await page.get_by_label("通知", exact=True).check()
        await page.get_by_label("标题").fill(title)
        await page.get_by_label("内容").fill(body)
        await page.get_by_role("radio", name="全市").check()
        await page.get_by_role("button", name="预览").click()
        await expect(page.locator("#pv-webpush")).to_have_attribute("data-value", "1")
        await expect(page.locator("#pv-webpush")).to_have_text("1 人")
        await expect(page.locator("#preview-result dt", has_text="网页推送")).to_have_count(1)
        await expect(page.locator("#pv-total")).to_have_attribute("data-value", "1")
        await expect(page.locator("#pv-sms")).to_have_attribute("data-value", "0")
        await page.locator("#submit").click()
        await expect(page).to_have_url(re.compile(r"#/broadcasts/\d+$"))
    finally:
        await context.close()
