"""The unanswered-questions loop through the staff API: citizens' web chat turns that the bot reports it
could not serve (the stand-in Rasa answers as the OutOfScope action does: a reply plus the
{"custom": {"turn_outcome": ...}} message) are kept with their numbers masked, grouped by similarity
for admins and viewers, assigned by an admin to a service or out of scope (audited), and exported as
candidate training examples in the catalogue's examples format."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
import yaml

from intents.menu import OUTCOME_KEY
from intents.services import catalogue
from tests.fake_rasa import FakeRasa

from .conftest import StaffGateway, running

SORRY = {"text": "抱歉，这个我暂时帮不上忙。", "buttons": []}
LAMP = ["楼道灯坏了找谁", "楼道的灯坏了找谁修", "楼道灯坏了找谁"]
ID_NUMBER = "650203198001011234"


@pytest_asyncio.fixture
async def world(city_template, tmp_path) -> AsyncIterator[tuple[StaffGateway, FakeRasa]]:
    fake = FakeRasa()
    await fake.start()
    try:
        async with running(
            city_template,
            tmp_path,
            rasa_url=fake.url,
            webchat_session_secret="unanswered-tests-webchat-secret",
            rate_limit_per_minute=1000,
            rate_limit_per_address_per_minute=100_000,
        ) as gw:
            yield gw, fake
    finally:
        await fake.stop()


async def citizen_says(gw: StaffGateway, *texts: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(gw.server.make_url("/api/webchat/sessions")) as response:
            session = (await response.json())["session"]
        for text in texts:
            body = {"session": session, "text": text}
            async with http.post(gw.server.make_url("/api/webchat/messages"), json=body) as response:
                assert response.status == 200, await response.text()


async def test_questions_the_bot_could_not_serve_are_grouped_assigned_and_exported(world):
    gw, fake = world
    fake.answer_raw([SORRY, {"custom": {OUTCOME_KEY: "declined"}}])
    await citizen_says(gw, LAMP[0], LAMP[1])
    await citizen_says(gw, LAMP[2], "你有男朋友没")
    fake.answer_raw([{"text": "没太明白您的意思，您是想办理：", "buttons": []}, {"custom": {OUTCOME_KEY: "suggested"}}])
    await citizen_says(gw, f"身份证{ID_NUMBER}查一下")
    fake.answer_normally()
    await citizen_says(gw, "12路到哪了")  # answered: not kept

    viewer, admin, sender = [await gw.signed_in(u) for u in ("viewer", "admin", "sender")]
    assert (await sender.get("/api/staff/unanswered")).status == 403

    listed = await viewer.get("/api/staff/unanswered")
    assert listed.status == 200, listed.body
    body = listed.body
    assert body["questions"] == 5
    lamp = body["groups"][0]
    assert lamp["count"] == 3 and lamp["text"] == LAMP[0]
    assert {w["text"] for w in lamp["wordings"]} == {LAMP[0], LAMP[1]}
    assert lamp["outcomes"] == {"declined": 3} and lamp["channels"] == {"webchat": 3}
    texts = [w["text"] for g in body["groups"] for w in g["wordings"]]
    assert "12路到哪了" not in texts
    assert ID_NUMBER not in str(body) and any(t.startswith("身份证65*") for t in texts)
    targets = {t["id"]: t for t in body["targets"]}
    assert targets["property_repair"]["name"] == "物业报修" and "out_of_scope" in targets

    # only an admin assigns, to something the catalogue has; refusals say why
    assert (
        await viewer.post("/api/staff/unanswered/assign", {"ids": lamp["ids"], "target": "property_repair"})
    ).status == 403
    wrong = await admin.post("/api/staff/unanswered/assign", {"ids": lamp["ids"], "target": "street_lamps"})
    assert wrong.status == 400 and "street_lamps" in wrong.body["error"]
    done = await admin.post("/api/staff/unanswered/assign", {"ids": lamp["ids"], "target": "property_repair"})
    assert done.status == 200 and done.body == {"assigned": 3, "target": "property_repair"}
    chat = next(g for g in body["groups"] if g["text"] == "你有男朋友没")
    assert (
        await admin.post("/api/staff/unanswered/assign", {"ids": chat["ids"], "target": "out_of_scope"})
    ).status == 200

    still_open = (await viewer.get("/api/staff/unanswered")).body
    assert still_open["questions"] == 1  # the ID-number question waits
    assigned = (await viewer.get("/api/staff/unanswered?status=assigned")).body
    assert {g["text"]: g["assigned_to"] for g in assigned["groups"]} == {
        LAMP[0]: {"property_repair": 3},
        "你有男朋友没": {"out_of_scope": 1},
    }
    audit = gw.audit("unanswered_assign")
    assert [(a["target"], a["staff_id"]) for a in audit] == [
        ("service:property_repair", gw.staff_id("admin")),
        ("service:out_of_scope", gw.staff_id("admin")),
    ]

    assert (await viewer.get("/api/staff/unanswered/export")).status == 403
    exported = await admin.get("/api/staff/unanswered/export")
    assert exported.status == 200
    assert exported.headers["Content-Type"].startswith("application/yaml")
    assert "attachment" in exported.headers["Content-Disposition"]
    examples = yaml.safe_load(exported.body)
    # the catalogue's examples format: intent → texts, one list per intent, each text once
    assert examples == {"out_of_scope": ["你有男朋友没"], "property_repair": [LAMP[0], LAMP[1]]}
    assert set(examples) <= {s.intent for s in catalogue().services} | {"out_of_scope"}
    assert "物业报修（community.yaml）" in exported.body
    assert [a["detail"] for a in gw.audit("unanswered_export")] == ['{"examples": 3}']


def test_grouping_joins_rewordings_and_keeps_unlike_questions_apart():
    from datetime import UTC, datetime

    from gateway.db.models import UnansweredQuestion
    from gateway.staff.unanswered import group

    texts = [
        "楼道灯坏了找谁",
        "楼道的灯坏了找谁修",
        "樓道燈壞了找誰",
        "你有男朋友没",
        "你有没有男朋友啊",
        "今天股票涨不涨",
    ]
    questions = [
        UnansweredQuestion(id=n, message_id=n, channel="sms", text=t, outcome="declined", created_at=datetime.now(UTC))
        for n, t in enumerate(texts, 1)
    ]
    groups = {g.text: sorted(g.ids) for g in group(questions)}
    # traditional characters are normalised before comparing: the same question
    assert groups == {"楼道灯坏了找谁": [1, 2, 3], "你有男朋友没": [4, 5], "今天股票涨不涨": [6]}
