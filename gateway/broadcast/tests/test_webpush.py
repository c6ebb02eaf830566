"""Web push end to end: citizens subscribe from web chat through the real subscription endpoint (SQL
store) with subscriptions the local push service made as a browser would; a broadcast then goes through
the audience rule, the fan-out, the dispatcher and the real WebPushSender (pywebpush) to the local push
service, which verifies the VAPID token and decrypts exactly what the browser would show. A subscription
the push service expired (410) is marked gone and its citizen gets the broadcast by SMS at the local
Twilio server instead. SQLite with in-process queue and state, PostgreSQL with Redis."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlmodel import col, select

from channels.webpush.handler import WebPushChannel
from channels.webpush.sender import MAX_PAYLOAD_BYTES, WebPushSender
from channels.webpush.vapid import generate_private_key_pem, load_private_key, public_key_b64
from channels.webpush.wire import push_payload
from gateway.broadcast import audience as audiences
from gateway.broadcast import render, service
from gateway.broadcast.runner import Content
from gateway.db.models import ChannelIdentity, Citizen, WebPushSubscription
from gateway.outbound.push_subscriptions import SqlPushSubscriptions
from gateway.outbound.recipients import FELL_BACK
from providers.webpush_api import LocalWebPush

from .conftest import Person, World
from .harness import line, running
from .test_delivery import reachable_by_sms
from .test_service import BODY, create, rows

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:twilio")

VAPID_KEY = generate_private_key_pem()
PUBLIC_KEY = public_key_b64(load_private_key(VAPID_KEY))
SUBJECT = "mailto:citizen-services@karamay.example"


@dataclass
class Browser:
    """A citizen's browser: its web chat session and the subscription the push service gave it."""

    person: Person
    session: str
    subscription: dict


@dataclass
class Gateway:
    """The gateway's subscription endpoint, served as the app serves it, on the SQL store."""

    url: str
    http: aiohttp.ClientSession

    async def subscribe(self, session: str, subscription: dict) -> tuple[int, dict]:
        body = {"session": session, "subscription": subscription}
        async with self.http.post(f"{self.url}/api/webpush/subscriptions", json=body) as response:
            return response.status, await response.json()


@pytest.fixture
async def push() -> AsyncIterator[LocalWebPush]:
    async with LocalWebPush() as service_:
        yield service_


@pytest.fixture
async def gateway(world: World, push: LocalWebPush) -> AsyncIterator[Gateway]:
    channel = WebPushChannel(SqlPushSubscriptions(world.sessions), PUBLIC_KEY, insecure_origins=(push.url,))
    app = web.Application()
    app.router.add_routes(channel.routes())
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
        yield Gateway(str(server.make_url("")).rstrip("/"), http)


async def chatting(world: World, person: Person) -> str:
    """The citizen has a web chat conversation (the identity the pipeline records on a first message)."""
    session = secrets.token_urlsafe(18)
    async with world.sessions() as db:
        db.add(ChannelIdentity(channel="webchat", address=session, citizen_id=person.id))
        await db.commit()
    return session


async def subscribed(world: World, gateway: Gateway, push: LocalWebPush, person: Person) -> Browser:
    session = await chatting(world, person)
    subscription = push.subscribe(PUBLIC_KEY)  # pushManager.subscribe({applicationServerKey})
    assert await gateway.subscribe(session, subscription) == (201, {"subscribed": True})
    browser = Browser(person, session, subscription)
    # the fixture's own record of who is who, for its independent channel rule (conftest.Person.channel)
    person.preferred, person.push = "webpush", str((await subscription_row(world, browser)).id)
    return browser


async def subscription_row(world: World, browser: Browser) -> WebPushSubscription:
    async with world.sessions() as db:
        found = await db.exec(
            select(WebPushSubscription).where(col(WebPushSubscription.endpoint) == browser.subscription["endpoint"])
        )
        return found.one()


def sender(world: World) -> WebPushSender:
    return WebPushSender(VAPID_KEY, SUBJECT, SqlPushSubscriptions(world.sessions))


async def test_subscribers_get_the_broadcast_by_push_and_an_expired_one_by_sms(world: World, push, gateway):
    people = reachable_by_sms(world, 7, community="c030")
    live, expired, by_sms = people[:3], people[3], people[4:]
    browsers = [await subscribed(world, gateway, push, p) for p in [*live, expired]]
    gone = browsers[-1]
    async with world.sessions() as db:
        preferred = (await db.exec(select(Citizen.preferred_channel).where(col(Citizen.id) == live[0].id))).one()
    assert preferred == "webpush"  # subscribing makes web push where notices go first
    push.expire(gone.subscription["endpoint"])  # the browser unsubscribed since: the push service says 410
    audience = {"type": "list", "phones": [p.phone for p in people]}
    async with world.sessions() as db:
        preview = await service.preview(db, world.settings(), "notice", BODY, audience, title="停水通知")
    assert preview["recipients"] == {"sms": 3, "wechat": 0, "webpush": 4, "total": 7}
    assert world.expected(False, lambda p: p in people)["webpush"] == 4  # the fixture's rule agrees
    assert preview["cost_yuan"] == round(3 * preview["segments"] * world.settings().sms_price_yuan, 3)

    async with line(world) as pipe:
        notice = await create(world, audience=audience, settings=pipe.settings)
        async with running(pipe.runner, pipe.dispatcher(senders={"webpush": sender(world)})):
            await pipe.until(notice.id)
            await pipe.until_progress(notice.id, "delivered", len(by_sms) + 1)

        # the push service got one message per live subscription, decrypted exactly as sent
        got = {m.endpoint: m.as_dict()["json"] for m in push.messages}
        assert set(got) == {b.subscription["endpoint"] for b in browsers[:3]}
        for payload in got.values():
            assert (payload["title"], payload["body"], payload["url"]) == ("停水通知", BODY, "/")
        assert {m.urgency for m in push.messages} == {"normal"} and {m.subject for m in push.messages} == {SUBJECT}
        # SMS: the others, and the expired subscriber instead of their push; nothing twice
        assert pipe.sms_count() == {p.phone: 1 for p in [*by_sms, expired]}
        assert {m.body for m in pipe.twilio.messages} == {f"{pipe.settings.sms_signature}【停水通知】{BODY}"}

    recorded = {r.citizen_id: r for r in await rows(world, notice.id)}
    for browser in browsers[:3]:
        row = recorded[browser.person.id]
        assert (row.channel, row.address, row.status) == ("webpush", browser.person.push, "sent")
        assert row.provider_id in {m.id for m in push.messages}
        assert (await subscription_row(world, browser)).last_success_at is not None
    fell_back = recorded[expired.id]
    assert (fell_back.channel, fell_back.address, fell_back.status) == ("sms", expired.phone, "delivered")
    assert fell_back.error.startswith(f"{FELL_BACK}：网页推送未送达") and "410" in fell_back.error
    assert (await subscription_row(world, gone)).gone_at is not None

    # the gone subscription is never chosen again: the next broadcast goes to that citizen by SMS at once
    expired.push = None
    async with world.sessions() as db:
        again = await service.preview(db, world.settings(), "notice", BODY, audience)
        due = await audiences.page(db, audiences.parse(audience, None), False, 0, 1000)
    assert again["recipients"] == {"sms": 4, "wechat": 0, "webpush": 3, "total": 7}
    assert {row.citizen_id: (row.channel, row.address) for row in due} == {p.id: p.channel(False) for p in people}


async def test_a_citizen_reachable_only_by_push_gets_it_and_fails_without_a_fallback(world: World, push, gateway):
    nobody = [p for p in world.people if p.channel(True)[0] == "none" and p.community == "c002"][:2]
    assert len(nobody) == 2, "the fixture has citizens with no phone and no WeChat"
    reached, expired = [await subscribed(world, gateway, push, p) for p in nobody]
    push.expire(expired.subscription["endpoint"])
    async with line(world) as pipe:
        emergency = await create(
            world, kind="emergency", title="沙尘暴预警", body="请关好门窗。", settings=pipe.settings,
            audience={"type": "communities", "ids": ["c002"]},
        )  # fmt: skip
        async with world.sessions() as db:
            await service.approve(db, world.staff["amy"], emergency.id)
        async with running(pipe.runner, pipe.dispatcher(senders={"webpush": sender(world)})):
            await pipe.until(emergency.id)
    (message,) = [m for m in push.messages if m.endpoint == reached.subscription["endpoint"]]
    assert message.urgency == "high"  # an emergency
    assert json.loads(message.text)["title"] == "沙尘暴预警"
    recorded = {r.citizen_id: r for r in await rows(world, emergency.id)}
    assert recorded[reached.person.id].status == "sent"
    failed = recorded[expired.person.id]
    assert (failed.channel, failed.status) == ("webpush", "failed") and failed.error.startswith("opted_out")


async def test_the_same_browser_subscribing_again_keeps_one_row_and_revives_it(world: World, push, gateway):
    person = reachable_by_sms(world, 1, community="c001")[0]
    browser = await subscribed(world, gateway, push, person)
    first = await subscription_row(world, browser)
    await SqlPushSubscriptions(world.sessions).record(str(first.id), "gone")
    assert (await subscription_row(world, browser)).gone_at is not None
    other_tab = await chatting(world, person)
    assert await gateway.subscribe(other_tab, browser.subscription) == (201, {"subscribed": True})
    again = await subscription_row(world, browser)
    assert again.id == first.id and again.gone_at is None


async def test_unknown_session_and_bad_subscriptions_are_refused(world: World, push, gateway):
    subscription = push.subscribe(PUBLIC_KEY)
    status, body = await gateway.subscribe(secrets.token_urlsafe(18), subscription)  # no conversation has it
    assert (status, body["code"]) == (404, "unknown_session") and "发送一条消息" in body["error"]
    session = await chatting(world, reachable_by_sms(world, 1, community="c002")[0])
    for broken, code in [
        ({**subscription, "endpoint": "http://127.0.0.1:9/push/x"}, "endpoint_https"),  # not the local service
        ({"endpoint": subscription["endpoint"]}, "keys"),
        ({**subscription, "keys": {**subscription["keys"], "auth": "short"}}, "auth"),
    ]:
        status, body = await gateway.subscribe(session, broken)
        assert (status, body["code"]) == (400, code)
    async with world.sessions() as db:
        kept = await db.exec(
            select(WebPushSubscription).where(col(WebPushSubscription.endpoint) == subscription["endpoint"])
        )
        assert kept.first() is None


def test_the_push_payload_is_the_notice_and_always_fits_a_push_message():
    payload = json.loads(push_payload("停水通知", BODY))
    assert (payload["title"], payload["body"], payload["url"]) == ("停水通知", BODY, "/")
    assert payload["tag"] == json.loads(push_payload("停水通知", BODY))["tag"]  # a repeat replaces it
    assert payload["tag"] != json.loads(push_payload("停水通知", BODY + "。"))["tag"]
    longest = push_payload("标" * 64, "长" * 500)  # what the service allows: kept whole
    assert json.loads(longest)["body"] == "长" * 500
    text = '长"' * 3000  # 15,000 bytes in JSON: quotes are escaped there
    huge = json.loads(push_payload("停水通知", text))
    assert len(push_payload("停水通知", text).encode()) <= MAX_PAYLOAD_BYTES
    assert huge["title"] == "停水通知" and huge["body"].endswith("…") and text.startswith(huge["body"][:-1])


def test_the_outgoing_message_of_a_web_push_recipient(world: World):
    school = Content(kind="school", title="家长会通知", body="周五下午三点开家长会。", urgent=True)
    message = render.outgoing(world.settings(), school, 7, "webpush", "42", reminder=True)
    assert (message.channel, message.to, message.ref, message.priority) == ("webpush", "42", "recipient:7", "reply")
    payload = json.loads(message.text)
    assert payload["title"] == f"{render.REMINDER}家长会通知"
    assert payload["body"] == "周五下午三点开家长会。"  # no "reply 收到": a notification cannot be answered
