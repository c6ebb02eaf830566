"""The handoff in-process: a citizen on web chat (the REST endpoint and the page's socket) asks for a
person, agents work the inbox through the staff API; the bot is a stand-in Rasa (tests/fake_rasa.py)
that echoes, so "the bot answered" is visible. SMS and WeChat through their providers, with the real
Rasa, are in tests/test_handoff.py."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer

from gateway.app import create_app
from gateway.handoff.responders import EMERGENCY, OFFER, RATED
from gateway.handoff.workorders import NONE as NO_ORDERS
from gateway.staff.tests.conftest import StaffClient, StaffGateway, running
from intents.menu import SORRY
from tests.fake_rasa import ECHO_PREFIX, FakeRasa

ALWAYS = "00:00-23:59:59"


class Citizen:
    """One web chat citizen: messages by REST, the agent's words on the page's socket."""

    def __init__(self, gw: StaffGateway) -> None:
        self.gw, self.http = gw, gw.client().http
        self.session = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def say(self, text: str) -> list[str]:
        if not self.session:
            async with self.http.post(self.gw.server.make_url("/api/webchat/sessions")) as r:
                self.session = (await r.json())["session"]
        body = {"session": self.session, "text": text}
        async with self.http.post(self.gw.server.make_url("/api/webchat/messages"), json=body) as r:
            assert r.status == 200, await r.text()
            return [reply["text"] for reply in (await r.json())["replies"]]

    async def open_page(self) -> None:
        self.ws = await self.http.ws_connect(self.gw.server.make_url(f"/ws/webchat?session={self.session}"))
        hello = await self.ws.receive_json(timeout=5)
        assert hello["type"] == "session" and hello["session"] == self.session

    async def pushed(self) -> str:
        assert self.ws is not None
        frame = await self.ws.receive_json(timeout=5)
        assert frame["type"] == "reply", frame
        return frame["text"]


def ticket_number(text: str) -> str:
    found = re.search(r"工单号(\d+)", text)
    assert found, text
    return found.group(1)


@pytest_asyncio.fixture
async def inbox(city_template: Path, tmp_path: Path, rasa: FakeRasa) -> AsyncIterator[StaffGateway]:
    async with running(city_template, tmp_path, rasa_url=rasa.url, handoff_hours=ALWAYS) as gateway:
        yield gateway


async def ticket(agent: StaffClient, number: str) -> dict[str, Any]:
    reply = await agent.get("/api/staff/handoffs?view=open")
    assert reply.status == 200, reply.body
    found = [t for t in reply.body["handoffs"] if t["number"] == number]
    assert found, reply.body
    return found[0]


async def test_a_citizen_asks_for_a_person_an_agent_answers_closes_and_the_bot_is_back(
    inbox: StaffGateway, rasa: FakeRasa
) -> None:
    citizen = Citizen(inbox)
    assert await citizen.say("12路到哪了") == [f"{ECHO_PREFIX}12路到哪了"]  # the bot, before the handoff
    (told,) = await citizen.say("转人工")
    number = ticket_number(told)
    assert "客服都不在线" in told  # nobody has opened the inbox yet: the citizen is told, the ticket kept
    assert await citizen.say("我家暖气不热，找了物业也没人管") == []  # to the agent, not the bot
    assert rasa.texts() == ["12路到哪了"]

    agent = await inbox.signed_in("agent1")
    waiting = await agent.get("/api/staff/handoffs")
    shown = next(t for t in waiting.body["handoffs"] if t["number"] == number)
    assert shown["status"] == "waiting" and shown["sla"] == "green" and shown["waiting_s"] >= 0
    assert citizen.session not in json.dumps(waiting.body)  # the session id is masked
    claimed = await agent.post(f"/api/staff/handoffs/{shown['id']}/claim")
    assert claimed.status == 200 and claimed.body["handoff"]["status"] == "claimed"

    detail = await agent.get(f"/api/staff/handoffs/{shown['id']}")
    said = [(e["kind"], e["text"]) for e in detail.body["transcript"]]
    assert ("in", "12路到哪了") in said and ("out", f"{ECHO_PREFIX}12路到哪了") in said  # bot turns too
    assert ("in", "我家暖气不热，找了物业也没人管") in said and ("claim", "") in said

    await citizen.open_page()
    reply = await agent.post(f"/api/staff/handoffs/{shown['id']}/reply", {"text": "您好，请问您住哪个小区？"})
    assert reply.status == 200, reply.body
    assert await citizen.pushed() == "您好，请问您住哪个小区？"
    note = await agent.post(f"/api/staff/handoffs/{shown['id']}/note", {"text": "疑似供热管道问题"})
    assert note.status == 200
    assert await citizen.say("昆仑小区3栋") == []

    closed = await agent.post(
        f"/api/staff/handoffs/{shown['id']}/close", {"category": "求助", "resolution": "已转供热公司上门"}
    )
    assert closed.status == 200 and closed.body["handoff"]["status"] == "closed"
    assert "回复1到5" in await citizen.pushed()
    assert await citizen.say("五星") == [RATED]
    assert await citizen.say("14路到哪了") == [f"{ECHO_PREFIX}14路到哪了"]  # the bot answers again
    row = inbox.query("SELECT rating, category, resolution, agent_id FROM handoff WHERE number = ?", number)[0]
    assert row == {
        "rating": 5,
        "category": "求助",
        "resolution": "已转供热公司上门",
        "agent_id": inbox.staff_id("agent1"),
    }
    actions = [a["action"] for a in inbox.audit() if a["action"].startswith("handoff_")]
    for action in ("handoff_claim", "handoff_view", "handoff_reply", "handoff_note", "handoff_close"):
        assert action in actions
    detail = await agent.get(f"/api/staff/handoffs/{shown['id']}")
    kinds = [e["kind"] for e in detail.body["transcript"]]
    assert "agent" in kinds and "note" in kinds and kinds.count("close") == 1
    assert citizen.ws is not None
    await citizen.ws.close()


async def test_with_an_agent_online_the_citizen_is_told_the_queue(inbox: StaffGateway) -> None:
    agent = await inbox.signed_in("agent1")
    assert (await agent.get("/api/staff/handoffs")).status == 200  # the agent is in the inbox: online
    first, second = Citizen(inbox), Citizen(inbox)
    (told,) = await first.say("人工客服")
    assert "马上为您接通" in told
    (told,) = await second.say("我要找真人")
    assert "前面还有1位" in told and "分钟" in told
    (again,) = await second.say("转人工")  # asking again while waiting: the same ticket, still queued
    assert ticket_number(again) == ticket_number(told) and "排队" in again
    assert len(inbox.query("SELECT id FROM handoff")) == 2


async def test_out_of_hours_the_citizen_is_told_when_someone_answers(
    city_template: Path, tmp_path: Path, rasa: FakeRasa
) -> None:
    async with running(city_template, tmp_path, rasa_url=rasa.url, handoff_hours="00:00-00:00") as gw:
        (told,) = await Citizen(gw).say("轉人工")  # traditional characters from a relative's phone
        assert "工单号" in told and "不在服务时间" in told and "明天00:00" in told
        assert "北京时间00:00到00:00（新疆时间22:00到22:00）" in told  # both of the city's clocks


async def test_two_agents_claiming_at_once_exactly_one_wins(inbox: StaffGateway) -> None:
    (told,) = await Citizen(inbox).say("转人工")
    one, two = await inbox.signed_in("agent1"), await inbox.signed_in("agent2")
    handoff_id = (await ticket(one, ticket_number(told)))["id"]
    replies = await asyncio.gather(
        one.post(f"/api/staff/handoffs/{handoff_id}/claim"), two.post(f"/api/staff/handoffs/{handoff_id}/claim")
    )
    assert sorted(r.status for r in replies) == [200, 409]
    loser = next(r for r in replies if r.status == 409)
    assert loser.body["code"] == "taken" and "其他客服" in loser.body["error"]
    winner = next(r for r in replies if r.status == 200)
    assert len(inbox.audit("handoff_claim")) == 1
    assert winner.body["handoff"]["agent_id"] == inbox.query("SELECT agent_id FROM handoff")[0]["agent_id"]


async def test_a_restart_keeps_the_conversation_with_its_agent(inbox: StaffGateway, rasa: FakeRasa) -> None:
    citizen = Citizen(inbox)
    number = ticket_number((await citizen.say("转人工"))[0])
    agent = await inbox.signed_in("agent1")
    handoff_id = (await ticket(agent, number))["id"]
    assert (await agent.post(f"/api/staff/handoffs/{handoff_id}/claim")).status == 200

    await inbox.server.close()  # the gateway stops; the same database, a new process
    server = TestServer(create_app(inbox.settings), host="127.0.0.1")
    await server.start_server()
    inbox.server = server
    assert await citizen.say("还在吗？我家水管漏水了") == []  # still with the agent: recorded, not the bot
    assert rasa.texts() == []
    agent = await inbox.signed_in("agent1")
    mine = await agent.get("/api/staff/handoffs?view=mine")
    assert [t["number"] for t in mine.body["handoffs"]] == [number]
    detail = await agent.get(f"/api/staff/handoffs/{handoff_id}")
    assert "还在吗？我家水管漏水了" in [e["text"] for e in detail.body["transcript"]]
    assert (await agent.post(f"/api/staff/handoffs/{handoff_id}/reply", {"text": "马上派人"})).status == 200


async def test_contact_is_masked_until_revealed_and_the_reveal_is_audited(inbox: StaffGateway) -> None:
    citizen = Citizen(inbox)
    number = ticket_number((await citizen.say("转人工"))[0])
    agent = await inbox.signed_in("agent1")
    shown = await ticket(agent, number)
    assert shown["contact"] != citizen.session and "*" in shown["contact"]
    revealed = await agent.post(f"/api/staff/handoffs/{shown['id']}/reveal")
    assert revealed.body == {"contact": citizen.session}
    (audited,) = inbox.audit("handoff_reveal")
    assert audited["staff_id"] == inbox.staff_id("agent1") and audited["target"] == f"handoff:{shown['id']}"


async def test_transfers_and_refusals_say_why(inbox: StaffGateway) -> None:
    number = ticket_number((await Citizen(inbox).say("转人工"))[0])
    one, two = await inbox.signed_in("agent1"), await inbox.signed_in("agent2")
    handoff_id = (await ticket(one, number))["id"]
    path = f"/api/staff/handoffs/{handoff_id}"
    refused = await one.post(f"{path}/reply", {"text": "您好"})
    assert refused.status == 409 and refused.body["code"] == "not_claimed" and "接单" in refused.body["error"]
    assert (await one.post(f"{path}/claim")).status == 200
    refused = await two.post(f"{path}/reply", {"text": "您好"})
    assert refused.status == 409 and refused.body["code"] == "not_yours"
    both = await one.post(f"{path}/transfer", {"team": "general", "agent_id": 1})
    assert both.status == 400 and "只选一个" in both.body["error"]
    unknown = await one.post(f"{path}/transfer", {"team": "nope"})
    assert unknown.status == 400 and "nope" in unknown.body["error"]
    teams = (await one.get("/api/staff/handoffs/stats")).body["teams"]
    family = teams[1]
    moved = await one.post(f"{path}/transfer", {"team": family["id"]})
    assert moved.body["handoff"]["status"] == "waiting" and moved.body["handoff"]["team"] == family["id"]
    assert (await two.post(f"{path}/claim")).status == 200
    handed = await two.post(f"{path}/transfer", {"agent_id": inbox.staff_id("agent1")})
    assert handed.body["handoff"]["agent_id"] == inbox.staff_id("agent1")
    empty = await one.post(f"{path}/reply", {"text": "   "})
    assert empty.status == 400
    bad = await one.post(f"{path}/close", {"category": "闲聊", "resolution": "x"})
    assert bad.status == 400
    assert (await one.get("/api/staff/handoffs/999999")).status == 404
    assert (await one.post(f"{path}/close", {"category": "咨询", "resolution": "已答复"})).status == 200
    after = await one.post(f"{path}/note", {"text": "补充"})
    assert after.status == 409 and after.body["code"] == "closed"


async def test_the_live_feed_streams_new_tickets_and_citizens_messages(inbox: StaffGateway) -> None:
    agent = await inbox.signed_in("agent1")
    url = inbox.server.make_url("/api/staff/handoffs/stream")
    async with agent.http.get(url) as stream:
        assert stream.status == 200 and stream.content_type == "text/event-stream"
        assert await stream.content.readline() == b": ready\n"
        citizen = Citizen(inbox)
        number = ticket_number((await citizen.say("转人工"))[0])
        events = await read_events(stream, 1)
        assert events[0][0] == "waiting" and events[0][1]["number"] == number
        await citizen.say("喂？")
        events = await read_events(stream, 1)
        assert events[0][0] == "message" and events[0][1]["number"] == number
        assert "喂" not in json.dumps(events)  # the feed names the ticket; the console fetches the words
    assert inbox.audit("handoff_feed")


async def read_events(stream: aiohttp.ClientResponse, count: int) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    while len(events) < count:
        line = (await asyncio.wait_for(stream.content.readline(), 5)).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((kind, json.loads(line.removeprefix("data: "))))
    return events


async def test_an_emergency_first_gets_the_numbers_then_the_offer(inbox: StaffGateway) -> None:
    citizen = Citizen(inbox)
    (told,) = await citizen.say("楼下着火了 有人受伤")
    assert told.startswith(EMERGENCY) and "119" in told and "120" in told and "转人工" in told
    assert inbox.query("SELECT id FROM handoff") == []  # offered, not opened
    await citizen.say("转人工")
    assert inbox.query("SELECT reason FROM handoff") == [{"reason": "emergency"}]
    (told,) = await Citizen(inbox).say("有人打电话说我银行卡冻结了让我转账，是不是诈骗")
    assert "96110" in told and "转人工" in told
    # An ordinary question with a word of the kind is the bot's: 牙龈出血 is a clinic, not an ambulance.
    assert await Citizen(inbox).say("牙龈出血挂哪个科") == [f"{ECHO_PREFIX}牙龈出血挂哪个科"]
    assert await Citizen(inbox).say("拨打人社局电话") == [f"{ECHO_PREFIX}拨打人社局电话"]


async def test_two_misunderstandings_in_a_row_offer_a_person(inbox: StaffGateway, rasa: FakeRasa) -> None:
    citizen = Citizen(inbox)
    rasa.answer_raw([{"recipient_id": "x", "text": f"{SORRY}我可以帮您办理公交、医疗…"}])
    assert OFFER not in await citizen.say("那个东西咋整")
    assert OFFER in await citizen.say("就是那个嘛")
    rasa.answer_normally()
    assert OFFER not in await citizen.say("12路")
    rasa.answer_raw([{"recipient_id": "x", "text": f"{SORRY}我可以帮您办理公交、医疗…"}])
    assert OFFER not in await citizen.say("唉")  # one miss after an answer is only one
    assert OFFER in await citizen.say("哎呀")
    await citizen.say("转人工")  # taking the offer up: the agent sees why
    agent = await inbox.signed_in("agent1")
    (waiting,) = (await agent.get("/api/staff/handoffs")).body["handoffs"]
    assert waiting["reason"] == "misunderstood"


@pytest.mark.parametrize("role_user", ["viewer", "sender", "teacher1"])
async def test_other_staff_cannot_read_the_inbox(inbox: StaffGateway, role_user: str) -> None:
    client = await inbox.signed_in(role_user)
    reply = await client.get("/api/staff/handoffs")
    assert reply.status == 403 and reply.body["code"] == "forbidden"


async def test_a_work_order_moves_on_and_the_citizen_is_told_and_can_ask(inbox: StaffGateway) -> None:
    citizen = Citizen(inbox)
    await citizen.say("12路到哪了")
    assert await citizen.say("我的投诉进度") == [NO_ORDERS]
    (conversation,) = inbox.query("SELECT id, citizen_id FROM conversation ORDER BY started_at DESC LIMIT 1")
    # As the bot's complaint service files it (intents/handlers/generic.py application; the real one
    # is driven in tests/test_handoff.py).
    inbox.execute(
        "INSERT INTO application (ref, service_id, citizen_id, conversation_id, text, details, created_at, status)"
        " VALUES ('SQ2612070001', 'complaint_12345', ?, ?, '楼下商贩占道经营', ?, ?, '受理')",
        conversation["citizen_id"],
        conversation["id"],
        json.dumps({"submitted_at": "2026-12-07T10:00:00"}),
        "2026-12-07 02:00:00.000000",
    )
    (told,) = await citizen.say("我的投诉进度")
    assert "SQ2612070001 12345热线投诉建议：受理（12月7日提交）" in told

    agent = await inbox.signed_in("agent1")
    listed = await agent.get("/api/staff/workorders")
    (order,) = [o for o in listed.body["workorders"] if o["ref"] == "SQ2612070001"]
    assert order["status"] == "受理" and order["text"] == "楼下商贩占道经营" and citizen.session not in order["contact"]
    path = f"/api/staff/workorders/{order['id']}/status"
    no_team = await agent.post(path, {"status": "转办"})
    assert no_team.status == 400 and "单位" in no_team.body["error"]
    await citizen.open_page()
    moved = await agent.post(path, {"status": "转办", "team": "城市管理局"})
    assert moved.status == 200 and moved.body["workorder"]["status"] == "转办"
    assert (
        await citizen.pushed() == "您的12345热线投诉建议（受理编号SQ2612070001）有新进展：转办。已转给城市管理局办理。"
    )
    backwards = await agent.post(path, {"status": "受理"})
    assert backwards.status == 409 and "往后" in backwards.body["error"]
    done = await agent.post(path, {"status": "已办结", "note": "城管已清理占道摊点。"})
    assert done.status == 200 and [h["status"] for h in done.body["workorder"]["history"]] == ["转办", "已办结"]
    assert (await citizen.pushed()).endswith("已办结。城管已清理占道摊点。")
    again = await agent.post(path, {"status": "已办结"})
    assert again.status == 409 and again.body["code"] == "finished"
    (told,) = await citizen.say("我的投诉处理得怎么样了")
    assert "SQ2612070001" in told and "已办结" in told
    assert [a["target"] for a in inbox.audit("workorder_status")] == [f"application:{order['id']}"] * 2
    open_only = await agent.get("/api/staff/workorders")
    assert "SQ2612070001" not in [o["ref"] for o in open_only.body["workorders"]]
    assert citizen.ws is not None
    await citizen.ws.close()


async def test_an_open_console_does_not_hold_the_gateway_stopping(city_template: Path, tmp_path: Path) -> None:
    # Without ending the event streams on shutdown, aiohttp's graceful stop waited for them: minutes.
    async with running(city_template, tmp_path) as gw:
        agent = await gw.signed_in("agent1")
        stream = await agent.http.get(gw.server.make_url("/api/staff/handoffs/stream"))
        assert await stream.content.readline() == b": ready\n"
        await asyncio.wait_for(gw.server.close(), 30)  # a hang, not a speed: it took 120 s before
        # The rest of the ready block, then the end: the stream was finished, not cut.
        assert await asyncio.wait_for(stream.content.read(), 5) == b"\n"
