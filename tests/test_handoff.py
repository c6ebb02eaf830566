"""The issue's "done when", whole-system: a resident on SMS (signed Twilio webhooks, the local Twilio
server) asks for a person; an agent answers through the staff API and the reply arrives as an SMS with
the signature; the agent closes, the resident rates, and the real bot answers the next question.
WeChat the same way, its replies through the customer-service API."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import aiohttp
from sqlmodel import select
from yarl import URL

from gateway.db.models import HandoffEntry, StaffUser
from gateway.handoff.responders import RATED
from gateway.staff.passwords import hash_password
from gateway.staff.tests.conftest import PASSWORD, StaffClient
from tests.stack import Stack
from tests.test_sms_wechat import SIGNATURE, Phone, WeChatUser


async def agent_of(http: aiohttp.ClientSession, stack: Stack, username: str) -> StaffClient:
    with stack.db() as db:
        if db.exec(select(StaffUser).where(StaffUser.username == username)).first() is None:
            db.add(
                StaffUser(username=username, display_name="小王", password_hash=hash_password(PASSWORD), role="agent")
            )
            db.commit()
    jar = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    agent = StaffClient(jar, URL(stack.url))
    assert (await agent.login(username)).status == 200
    return agent


async def ticket_id(agent: StaffClient, told: str) -> int:
    number = re.search(r"工单号(\d+)", told)
    assert number, told
    listed = await agent.get("/api/staff/handoffs?view=waiting")
    return next(t["id"] for t in listed.body["handoffs"] if t["number"] == number.group(1))


async def seen_by_agent(agent: StaffClient, handoff_id: int, text: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        detail = await agent.get(f"/api/staff/handoffs/{handoff_id}")
        if ("in", text) in [(e["kind"], e["text"]) for e in detail.body["transcript"]]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} never reached the agent")


async def handoff_round_trip(
    agent: StaffClient,
    say: Callable[[str], Awaitable[str]],
    send: Callable[[str], Awaitable[object]],
    count: Callable[[], Awaitable[int]],
    wait_for: Callable[[int], Awaitable[list[dict]]],
    field: str,
    line: str,
) -> list[str]:
    """Ask for a person, be answered by the agent, write while handed off, be closed, rate, ask the bot
    about a bus `line` (one no other test asks about over SMS: test_sms_wechat finds its answer by
    text in the shared database). Returns what the citizen received, in order."""
    told = await say("转人工")
    handoff_id = await ticket_id(agent, told)
    assert (await agent.post(f"/api/staff/handoffs/{handoff_id}/claim")).status == 200
    before = await count()
    await send("我家楼道灯坏了好几天了")  # to the agent: recorded, no bot answer
    await seen_by_agent(agent, handoff_id, "我家楼道灯坏了好几天了")
    reply = await agent.post(f"/api/staff/handoffs/{handoff_id}/reply", {"text": "您好，请问是哪个小区几号楼？"})
    assert reply.status == 200, reply.body
    received = await wait_for(before + 1)
    assert len(received) == before + 1  # the agent's reply, and no bot answer to the message before it
    closed = await agent.post(
        f"/api/staff/handoffs/{handoff_id}/close", {"category": "求助", "resolution": "已派物业维修"}
    )
    assert closed.status == 200, closed.body
    rating_asked = (await wait_for(before + 2))[-1][field]
    rated = await say("4")
    answer = await say(f"{line}公交车到哪了")
    return [told, received[-1][field], rating_asked, rated, answer]


async def test_sms_resident_reaches_a_person_and_the_bot_answers_after_the_close(http, stack):
    phone = Phone(http, stack)
    agent = await agent_of(http, stack, "agent_sms")
    told, reply, rating_asked, rated, answer = await handoff_round_trip(
        agent, phone.say, phone.send, lambda: _count(phone.inbox), phone.wait_for, "body", "7路"
    )
    assert told.startswith(SIGNATURE) and "工单号" in told
    assert reply.startswith(SIGNATURE) and "您好，请问是哪个小区几号楼？" in reply
    assert rating_asked.startswith(SIGNATURE) and "回复1到5" in rating_asked
    assert RATED in rated
    assert answer.startswith(SIGNATURE) and "7路" in answer and "辆车在运行" in answer
    await agent.http.close()


async def test_wechat_resident_reaches_a_person_through_the_customer_service_api(http, stack):
    user = WeChatUser(http, stack)
    agent = await agent_of(http, stack, "agent_wechat")
    told, reply, rating_asked, rated, answer = await handoff_round_trip(
        agent,
        user.say,
        lambda text: user.post(user.text(text)),
        lambda: _count(user.inbox),
        user.wait_for,
        "text",
        "8路",
    )
    assert "工单号" in told and not told.startswith(SIGNATURE)  # no SMS signature on WeChat
    assert reply == "您好，请问是哪个小区几号楼？"
    assert "回复1到5" in rating_asked and rated == RATED
    assert "8路" in answer and "辆车在运行" in answer
    await agent.http.close()


async def _count(inbox: Callable[[], Awaitable[list[dict]]]) -> int:
    return len(await inbox())


async def test_sms_complaint_becomes_a_work_order_whose_status_the_resident_can_ask(http, stack):
    phone = Phone(http, stack)
    agent = await agent_of(http, stack, "agent_orders")
    asked = await phone.say("我要投诉，小区楼下商贩占道经营，人都走不过去")
    assert "请确认提交" in asked and "12345热线投诉建议" in asked
    filed = await phone.say("确认")
    ref = re.search(r"受理编号 (SQ\d+)", filed)
    assert ref and "我的投诉进度" in filed, filed
    progress = await phone.say("我的投诉进度")
    assert progress.startswith(SIGNATURE) and f"{ref.group(1)} 12345热线投诉建议：受理" in progress

    listed = await agent.get("/api/staff/workorders")
    order = next(o for o in listed.body["workorders"] if o["ref"] == ref.group(1))
    assert order["channel_label"] == "短信" and phone.number not in order["contact"]
    before = len(await phone.inbox())
    moved = await agent.post(f"/api/staff/workorders/{order['id']}/status", {"status": "转办", "team": "城市管理局"})
    assert moved.status == 200, moved.body
    told = (await phone.wait_for(before + 1))[-1]["body"]
    assert told.startswith(SIGNATURE) and f"受理编号{ref.group(1)}）有新进展：转办。已转给城市管理局办理。" in told
    asked_again = await phone.say("我的投诉处理得怎么样了")
    assert f"{ref.group(1)} 12345热线投诉建议：转办" in asked_again
    by_ref = await phone.say(f"查询进度 {ref.group(1)}")  # the bot's own status service reads it too
    assert "当前状态：转办" in by_ref
    await agent.http.close()


async def test_two_agents_claiming_the_same_resident_at_once_one_wins(http, stack):
    phone = Phone(http, stack)
    one, two = await agent_of(http, stack, "agent_race1"), await agent_of(http, stack, "agent_race2")
    handoff_id = await ticket_id(one, await phone.say("人工客服"))
    claims = await asyncio.gather(*(a.post(f"/api/staff/handoffs/{handoff_id}/claim") for a in (one, two)))
    assert sorted(c.status for c in claims) == [200, 409]
    winner = next(c for c in claims if c.status == 200).body["handoff"]["agent_name"]
    assert winner == "小王"
    with stack.db() as db:
        claimed = db.exec(select(HandoffEntry).where(HandoffEntry.handoff_id == handoff_id)).all()
    assert [e.kind for e in claimed] == ["claim"]
    for agent in (one, two):
        await agent.http.close()
