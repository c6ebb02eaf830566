"""Personal records only to their owner (issue 13, finding 1), end to end through the real Rasa and
action server: an anonymous web chat typing someone's ID number learns nothing, not even whether the
record exists; the owner texting from their phone sees it; every read and refusal is in the audit log."""

from __future__ import annotations

import re
from datetime import timedelta

from rasa_sdk import Tracker
from sqlmodel import select

from bot.actions.context import context_for
from gateway.db.models import AuditLog, ChannelIdentity, utcnow
from intents.city.tables import default_tables
from tests.conftest import Chat
from tests.test_sms_wechat import Phone

TABLES = default_tables()
PENSION = TABLES["social_pension_accounts"].records[0]  # 650203198503120010, 王*军
OTHER_PHONE = "+8613800000001"


async def test_an_anonymous_web_chat_cannot_open_a_record_by_id_number(http, stack):
    chat = Chat(http, stack)
    await chat.say(f"查养老保险账户 {PENSION.key}")
    assert "只向本人提供" in chat.text and "绑定" in chat.text
    assert PENSION.fields and not any(str(v) in chat.text for v in PENSION.fields.values())
    assert "王" not in chat.text


async def test_an_anonymous_web_chat_is_not_asked_for_an_id_number_it_cannot_use(http, stack):
    chat = Chat(http, stack)
    await chat.say("查一下医保账户余额")
    assert "只向本人提供" in chat.text and "身份证号码" not in chat.text


async def test_someone_elses_id_number_gets_the_same_answer_as_none(http, stack):
    phone = Phone(http, stack, number=OTHER_PHONE)
    theirs = await phone.say(f"查养老保险账户 {PENSION.key}")
    nobodys = await phone.say("查养老保险账户 650203190001010011")
    assert "没有查到" in theirs and "王" not in theirs
    assert theirs.replace(PENSION.key, "KEY") == nobodys.replace("650203190001010011", "KEY")


async def test_the_owner_sees_their_record_and_the_read_is_audited(http, stack):
    phone = Phone(http, stack, number=PENSION.owner)
    text = await phone.say(f"查养老保险账户 {PENSION.key}")
    assert "王*军" in text and "68452.37" in text
    with stack.db() as db:
        actions = db.exec(
            select(AuditLog.action).where(AuditLog.target == f"social_pension_accounts:{PENSION.id}")
        ).all()
    assert "citizen.personal_record" in actions


async def test_paying_for_someone_else_shows_no_address(http, stack):
    chat = Chat(http, stack)
    await chat.say("查一下水费 户号1134412157")
    assert "周*洋" in chat.text and "1134412157" in chat.text  # paid or not: other tests share the bill
    assert "北辰社区" not in chat.text and "28栋" not in chat.text


async def test_a_web_chat_verifies_its_phone_by_sms_code_then_sees_its_record_until_it_logs_out(http, stack):
    chat = Chat(http, stack)
    owner = Phone(http, stack, number=PENSION.owner)  # reads what the local Twilio server delivered
    before = len(await owner.inbox())
    await chat.say(f"绑定{PENSION.owner.removeprefix('+86')}")
    assert "验证码已发送" in chat.text
    code = re.search(r"验证码是(\d{6})", (await owner.wait_for(before + 1))[-1]["body"]).group(1)
    await chat.say("000000" if code != "000000" else "111111")
    assert "不正确" in chat.text
    await chat.say(code)
    assert "绑定成功" in chat.text
    await chat.say(f"查养老保险账户 {PENSION.key}")
    assert "王*军" in chat.text and "68452.37" in chat.text
    await chat.say("退出登录")
    assert "已退出登录" in chat.text
    await chat.say(f"查养老保险账户 {PENSION.key}")
    assert "只向本人提供" in chat.text and "68452.37" not in chat.text


async def test_a_web_chat_phone_proof_older_than_a_week_asks_to_verify_again(http, stack):
    record = TABLES["social_pension_accounts"].records[1]  # another owner: one code per phone a minute
    chat = Chat(http, stack)
    owner = Phone(http, stack, number=record.owner)
    before = len(await owner.inbox())
    await chat.say(f"绑定{record.owner.removeprefix('+86')}")
    code = re.search(r"验证码是(\d{6})", (await owner.wait_for(before + 1))[-1]["body"]).group(1)
    await chat.say(code)
    assert "绑定成功" in chat.text
    await chat.say(f"查养老保险账户 {record.key}")
    assert "45218.90" in chat.text
    with stack.db() as db:  # eight days pass
        identity = db.exec(select(ChannelIdentity).where(ChannelIdentity.address == chat.session)).one()
        identity.phone_proved_at = utcnow() - timedelta(days=8)
        db.add(identity)
        db.commit()
    await chat.say(f"查养老保险账户 {record.key}")
    assert "只向本人提供" in chat.text and "绑定" in chat.text and "45218.90" not in chat.text


def _tracker(metadata: dict | None) -> Tracker:
    message = {"text": f"查养老保险账户 {PENSION.key}", "intent": {"name": "social_insurance_balance"}}
    return Tracker("conversation-1", {}, {**message, "metadata": metadata}, [], False, None, {}, None)


def test_the_action_server_knows_who_is_asking_from_the_gateways_metadata_only():
    asked = context_for(_tracker({"channel": "sms", "citizen_id": 42, "verified_phone": PENSION.owner}))
    assert (asked.citizen_id, asked.channel, asked.verified_phone) == (42, "sms", PENSION.owner)
    nobody = context_for(_tracker(None))  # rasa shell, or anything that did not come through the gateway
    assert (nobody.citizen_id, nobody.channel, nobody.verified_phone) == (None, None, None)
    unbound = context_for(_tracker({"channel": "webchat", "citizen_id": 43, "verified_phone": None}))
    assert unbound.verified_phone is None
