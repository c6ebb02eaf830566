"""Parents and school notices: binding a guardian by SMS and by WeChat with an SMS code, choosing
the notice channel, acknowledging a school notice with "收到" or "1" (while "1" stays a menu choice
otherwise), and the assistant listing a parent's notices.

End to end through the real stack (signed Twilio and encrypted WeChat webhooks, the gateway, Rasa and
the action server, the local Twilio and WeChat servers) on both backends; the stack's gateway seeded
the demo population when it started. A few in-process checks of gateway.inbound.schools come first: the
edges that are slow to reach through the stack (five wrong codes, one code a minute, attempts)."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import exists
from sqlmodel import Session, col, select

from channels.base import InboundMessage, Outgoing
from gateway.config import Settings
from gateway.db.engine import async_engine, session_factory, sync_engine
from gateway.db.models import (
    Broadcast,
    BroadcastRecipient,
    ChannelIdentity,
    Citizen,
    Guardian,
    SchoolClass,
    StaffUser,
    Student,
    utcnow,
)
from gateway.db.seed import seed_population
from gateway.domain_ports import BroadcastSchoolNotices
from gateway.inbound.schools import Schools
from gateway.state import MemoryState
from gateway.wires import wires
from intents import ports, runtime
from intents.city.pack import load_pack
from intents.handlers import run_service
from intents.runtime import Context
from intents.services import catalogue
from tests.stack import Stack, fresh_database
from tests.test_sms_wechat import Phone, WeChatUser, new_phone

SIGNATURE = "【克拉玛依市民服务】"


@dataclass
class Parent:
    student_id: str
    student_name: str
    school_id: str
    citizen_id: int
    phone: str


def parent(url: str, class_id: str, offset: int = 0) -> Parent:
    """A guardian of a student of this class (each test uses its own class) who gets SMS, has not
    opted out and has never been sent a notice, so nothing another test did can answer for them."""
    with Session(sync_engine(url)) as db:
        noticed = exists().where(col(BroadcastRecipient.citizen_id) == col(Guardian.citizen_id))
        row = db.exec(
            select(Guardian, Student, Citizen, SchoolClass)
            .join(Student, col(Student.id) == col(Guardian.student_id))
            .join(SchoolClass, col(SchoolClass.id) == col(Student.class_id))
            .join(Citizen, col(Citizen.id) == col(Guardian.citizen_id))
            .where(
                SchoolClass.id == class_id,
                Citizen.preferred_channel == "sms",
                col(Citizen.sms_opted_out).is_(False),
                ~noticed,
            )
            .order_by(col(Student.id), col(Guardian.id))
            .offset(offset)
        ).first()
        assert row is not None, f"the seeded population has no such guardian in {class_id}"
        _, student, citizen, klass = row
        return Parent(student.id, student.name, klass.school_id, citizen.id, citizen.phone)


def notice(url: str, who: Parent, title: str, age: timedelta, status: str = "sent") -> int:
    """A school notice as the broadcast engine leaves it once sent: a Broadcast and this parent's row."""
    with Session(sync_engine(url)) as db:
        staff = StaffUser(
            username=f"teacher-{uuid.uuid4().hex[:8]}", display_name="班主任", password_hash="-", role="school"
        )
        db.add(staff)
        db.flush()
        sent = utcnow() - age
        broadcast = Broadcast(
            kind="school",
            title=title,
            body=f"{title}：请家长留意。回复“收到”确认。",
            audience={"type": "school"},
            school_id=who.school_id,
            status="completed",
            created_by=staff.id,
            created_at=sent,
            started_at=sent,
            finished_at=sent,
            recipient_total=1,
        )
        db.add(broadcast)
        db.flush()
        recipient = BroadcastRecipient(
            broadcast_id=broadcast.id,
            citizen_id=who.citizen_id,
            student_id=who.student_id,
            channel="sms",
            address=who.phone,
            status=status,
            attempts=1,
            updated_at=sent,
        )
        db.add(recipient)
        db.commit()
        return recipient.id


def acked(url: str, recipient_id: int) -> bool:
    with Session(sync_engine(url)) as db:
        return db.get(BroadcastRecipient, recipient_id).acked_at is not None


def guardian_rows(stack: Stack, student_id: str) -> list[Guardian]:
    with stack.db() as db:
        return list(db.exec(select(Guardian).where(Guardian.student_id == student_id)).all())


# --- in process: gateway.inbound.schools on a seeded SQLite file ----------------------------------------------


@dataclass
class Local:
    """gateway.inbound.schools with its own database, in-memory state and an outbox that keeps what it got."""

    url: str
    schools: Schools
    sent: list[Outgoing]

    def message(self, channel: str, sender: str, text: str) -> InboundMessage:
        return InboundMessage(channel, sender, uuid.uuid4().hex, text)

    async def say(self, channel: str, sender: str, text: str) -> str | None:
        replies = await self.schools.answer(self.message(channel, sender, text), self.schools.wires[channel])
        return None if replies is None else replies[0].text

    def guardian(self, class_id: str) -> tuple[Guardian, Student, Citizen]:
        engine = sync_engine(self.url)
        with Session(engine) as db:
            row = db.exec(
                select(Guardian, Student, Citizen)
                .join(Student, col(Student.id) == col(Guardian.student_id))
                .join(Citizen, col(Citizen.id) == col(Guardian.citizen_id))
                .where(Student.class_id == class_id)
                .order_by(col(Guardian.id))
            ).first()
        engine.dispose()
        return row


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> str:
    url = fresh_database("sqlite", tmp_path_factory.mktemp("schools"))
    seed_population(url, load_pack())
    return url


@pytest.fixture
async def local(seeded):
    engine = async_engine(seeded)
    sent: list[Outgoing] = []

    async def enqueue(message: Outgoing) -> None:
        sent.append(message)

    yield Local(seeded, Schools(Settings(), session_factory(engine), MemoryState(), enqueue, wires(Settings())), sent)
    await engine.dispose()


async def test_messages_that_are_not_ours_go_on_to_the_menu_and_the_bot(local):
    sender = new_phone()
    for text in ["1", "收到", "123456", "绑定13912345678", "12路到哪了", "通知", "学校最近有什么通知"]:
        assert await local.say("sms", sender, text) is None, text
    assert await local.say("webchat", sender, "绑定 KS2026030215 王小明") is None  # SMS and WeChat only


async def test_wechat_codes_allow_five_tries_and_one_code_a_minute(local):
    _, student, citizen = local.guardian("ks03-1-1")
    openid = f"oTest{uuid.uuid4().hex[:20]}"
    answer = await local.say("wechat", openid, f"绑定 {student.name} {student.id}")  # name first works too
    assert "验证码已发送" in answer and f"尾号{citizen.phone[-4:]}" in answer
    codes = [re.search(r"验证码是(\d{6})", m.text).group(1) for m in local.sent]
    assert local.sent[0].channel == "sms" and local.sent[0].to == citizen.phone
    assert await local.say("wechat", openid, f"绑定{student.id}{student.name}") == "验证码已发送，请1分钟后再试。"
    wrong = next(f"{n:06d}" for n in range(10**6) if f"{n:06d}" not in codes)
    for left in (4, 3, 2, 1):
        assert f"还可以再试{left}次" in await local.say("wechat", openid, wrong)
    assert "错误次数过多" in await local.say("wechat", openid, wrong)
    assert await local.say("wechat", openid, codes[0]) is None  # the attempt is over: just six digits now


async def test_binding_attempts_are_limited_per_sender(local):
    sender = new_phone()
    answers = [await local.say("sms", sender, f"绑定KS20260101{n:02d}张三") for n in range(12)]
    assert all("学号和姓名须与学校登记一致" in a for a in answers[:10])
    assert "尝试次数过多" in answers[-1]


async def test_wechat_already_bound_to_the_guardian_phone_needs_no_code(local):
    _, student, citizen = local.guardian("ks03-2-1")
    engine = sync_engine(local.url)
    openid = f"oTest{uuid.uuid4().hex[:20]}"
    with Session(engine) as db:  # "绑定+手机号" done earlier: the openid is the guardian's already
        db.add(ChannelIdentity(channel="wechat", address=openid, citizen_id=citizen.id))
        db.commit()
    engine.dispose()
    answer = await local.say("wechat", openid, f"绑定{student.id}{student.name}")
    assert "绑定成功" in answer and not local.sent


async def test_acknowledgement_and_the_notice_list_in_process(local, monkeypatch):
    monkeypatch.setattr(ports.PORTS, "school_notices", BroadcastSchoolNotices(local.schools.sessions))
    who = parent(local.url, "ks01-6-1")
    stale = notice(local.url, who, "旧通知", timedelta(days=8))
    failed = notice(local.url, who, "没发出去的通知", timedelta(minutes=1), status="failed")
    fresh = notice(local.url, who, "新通知", timedelta(hours=1))
    assert await local.say("sms", who.phone, "收到了！") == "已确认收到《新通知》"
    assert acked(local.url, fresh) and not acked(local.url, stale) and not acked(local.url, failed)
    assert await local.say("sms", who.phone, "１") is None  # nothing else awaits: the menu's "1"

    async def listed(citizen_id: int | None) -> str:
        service = catalogue().service("school_notices")
        ctx = Context(
            {}, citizen_id, "c", "学校最近有什么通知", runtime.now(), load_pack(), local.schools.sessions, service
        )
        return (await run_service(service, ctx)).text

    text = await listed(who.citizen_id)
    assert "《新通知》" in text and "《旧通知》" in text and "《没发出去的通知》" in text
    assert "新通知》（" in text and who.student_name in text
    assert next(line for line in text.splitlines() if "新通知" in line).endswith("已确认")
    assert "最近30天没有收到学校通知" in await listed(None)
    monkeypatch.setattr(ports.PORTS, "school_notices", None)  # the domain run without the gateway
    assert "学校通知暂时无法查询" in await listed(who.citizen_id)


# --- binding ---------------------------------------------------------------------------------------


async def test_a_parent_binds_by_sms_from_the_phone_the_school_recorded(http, stack):
    who = parent(stack.database_url, "ks01-1-1")
    with stack.db() as db:  # as if the school had just recorded the phone
        for row in db.exec(select(Guardian).where(Guardian.citizen_id == who.citizen_id)).all():
            row.verified = False
            db.add(row)
        db.commit()
    phone = Phone(http, stack, who.phone)

    answer = await phone.say(f"绑定 {who.student_id} {who.student_name}")
    assert answer.startswith(SIGNATURE) and "绑定成功" in answer and who.student_name in answer
    mine = [g for g in guardian_rows(stack, who.student_id) if g.citizen_id == who.citizen_id]
    assert mine and all(g.verified for g in mine)

    assert "学号和姓名须与学校登记一致" in await phone.say(f"绑定{who.student_id}王某某不对")
    assert "请按“绑定 学号 学生姓名”发送" in await phone.say("绑定KS12345")
    assert "没有关联微信" in await phone.say("通知发微信")  # this parent has no WeChat yet

    stranger = Phone(http, stack, new_phone())
    answer = await stranger.say(f"绑定{who.student_id}{who.student_name}")  # no spaces needed
    assert "不是" in answer and "登记的家长电话" in answer and "班主任" in answer


async def test_a_parent_binds_wechat_with_a_code_sent_to_the_phone_on_record(http, stack):
    who = parent(stack.database_url, "ks02-3-1")
    user = WeChatUser(http, stack)
    answer = await user.say(f"绑定{who.student_id}{who.student_name}")
    assert "验证码已发送" in answer and f"尾号{who.phone[-4:]}" in answer
    texts = await Phone(http, stack, who.phone).wait_for(1)
    code = re.search(r"验证码是(\d{6})", texts[-1]["body"]).group(1)
    assert who.student_name in texts[-1]["body"]

    wrong = f"{(int(code) + 1) % 10**6:06d}"
    assert "还可以再试4次" in await user.say(wrong)
    answer = await user.say(code)
    assert "绑定成功" in answer and who.student_name in answer
    with stack.db() as db:
        identity = db.exec(
            select(ChannelIdentity).where(ChannelIdentity.channel == "wechat", ChannelIdentity.address == user.openid)
        ).one()
        assert identity.citizen_id == who.citizen_id
        assert db.get(Citizen, who.citizen_id).preferred_channel == "wechat"
    assert all(g.verified for g in guardian_rows(stack, who.student_id) if g.citizen_id == who.citizen_id)

    assert f"尾号{who.phone[-4:]}" in await user.say("通知发短信")
    with stack.db() as db:
        assert db.get(Citizen, who.citizen_id).preferred_channel == "sms"
    assert "优先发到微信" in await user.say("通知发微信")
    with stack.db() as db:
        assert db.get(Citizen, who.citizen_id).preferred_channel == "wechat"


# --- acknowledgements ------------------------------------------------------------------------------


async def test_shou_dao_and_1_acknowledge_notices_and_then_1_is_a_menu_choice_again(http, stack):
    who = parent(stack.database_url, "ks04-5-1")
    stale = notice(stack.database_url, who, "上月家长会", timedelta(days=8))  # too old to be what "收到" answers
    older = notice(stack.database_url, who, "冬季作息调整", timedelta(hours=3))
    newer = notice(stack.database_url, who, "期末考试安排", timedelta(minutes=5))
    phone = Phone(http, stack, who.phone)

    answer = await phone.say("收到")
    assert "已确认收到《期末考试安排》" in answer and "还有1条" in answer
    assert acked(stack.database_url, newer) and not acked(stack.database_url, older)
    assert "已确认收到《冬季作息调整》" in await phone.say("1")
    assert acked(stack.database_url, older) and not acked(stack.database_url, stale)

    # Nothing awaits now: "1" is the first button of the latest menu again.
    menu = await phone.say("明天上午挂人民医院的号")
    first = re.search(r"回复1 (\S+)", menu).group(1)
    answer = await phone.say("1")
    assert "已确认收到" not in answer and "请确认" in answer and first in answer
    assert not acked(stack.database_url, stale)


async def test_1_without_a_notice_is_the_menu_and_a_repeated_webhook_acks_once(http, stack):
    who = parent(stack.database_url, "ks05-2-1")
    phone = Phone(http, stack, who.phone)
    menu = await phone.say("明天上午挂人民医院的号")
    first = re.search(r"回复1 (\S+)", menu).group(1)
    answer = await phone.say("1")
    assert "请确认" in answer and first in answer

    one = notice(stack.database_url, who, "运动会通知", timedelta(minutes=30))
    two = notice(stack.database_url, who, "体检通知", timedelta(minutes=10))
    sid = await phone.send("已收到")
    await phone.send("已收到", sid)  # Twilio retries the same message: one acknowledgement
    replies = await phone.wait_for(3)
    assert "已确认收到《体检通知》" in replies[-1]["body"]
    await asyncio.sleep(1.0)  # time for a duplicate to be processed, were it let through
    assert acked(stack.database_url, two) and not acked(stack.database_url, one)


# --- the assistant lists a parent's notices -----------------------------------------------------------


async def test_the_assistant_lists_a_parents_school_notices(http, stack):
    who = parent(stack.database_url, "ks06-4-1")
    notice(stack.database_url, who, "秋游安全须知", timedelta(days=2))
    seen = notice(stack.database_url, who, "家长开放日", timedelta(days=1))
    notice(stack.database_url, who, "九月开学通知", timedelta(days=40))  # older than 30 days: not listed
    with stack.db() as db:
        row = db.get(BroadcastRecipient, seen)
        row.acked_at = utcnow()
        db.add(row)
        db.commit()
    phone = Phone(http, stack, who.phone)

    answer = await phone.say("学校最近有什么通知")
    assert "最近30天的学校通知" in answer
    assert "《家长开放日》" in answer and "《秋游安全须知》" in answer and "九月开学通知" not in answer
    lines = answer.splitlines()
    assert any("家长开放日" in line and "已确认" in line for line in lines)
    assert any("秋游安全须知" in line and "未确认" in line and who.student_name in line for line in lines)
    assert answer.index("家长开放日") < answer.index("秋游安全须知")  # newest first
