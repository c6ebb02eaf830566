"""Parents and school notices, over SMS and WeChat, before the bot sees the message:

- "绑定 学号 姓名" (spaces optional, either order): by SMS, the sender's phone must be a guardian phone
  the school recorded for that student, and the guardian is then verified. By WeChat, a six-digit code
  goes by SMS to the guardian phone(s) on record (hashed in state, five tries, one code per phone per
  minute, by gateway.inbound.verification as for phone binding); the right code links the WeChat identity to that
  guardian's citizen and makes WeChat the channel notices go to first.
- "通知发微信" / "通知发短信": the channel notices go to first (Citizen.preferred_channel).
- "收到" / "1" after a school notice: acknowledges the citizen's most recent un-acknowledged school
  notice of the last seven days. "1" means this only while such a notice waits; otherwise it stays
  the numbered menu's first button.

A message can be run twice (a worker died after the turn, before acking the stream entry). The
pipeline then replays the recorded answer, so only side effects need care: an acknowledgement is
remembered per message, so a re-run cannot acknowledge a second notice."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, func, or_, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import InboundMessage, Outgoing, Reply, Wire
from gateway.config import Settings
from gateway.db import conversations
from gateway.db.conversations import citizen_for_phone
from gateway.db.engine import id_column
from gateway.db.models import (
    Broadcast,
    BroadcastRecipient,
    ChannelIdentity,
    Citizen,
    Conversation,
    Guardian,
    School,
    SchoolClass,
    Student,
    utcnow,
)
from gateway.inbound.verification import CODE_RE, CODE_TTL_S, TOO_SOON, matches, new_code, send_code, wrong_try
from gateway.outbound.refs import NoticeRef
from gateway.state import StateStore
from gateway.wires import Wires
from intents.runtime import pack

STUDENT_ID = r"KS\d{10}"
NAME = r"[\u4e00-\u9fff·]{2,20}"
SEP = r"[,，:：、;；\-]?"
BIND_ID_FIRST = re.compile(rf"^绑定(?:学生|孩子)?{SEP}(?:学号)?{SEP}({STUDENT_ID}){SEP}(?:姓名)?{SEP}({NAME})$", re.I)
BIND_NAME_FIRST = re.compile(rf"^绑定(?:学生|孩子)?{SEP}(?:姓名)?{SEP}({NAME}){SEP}(?:学号)?{SEP}({STUDENT_ID})$", re.I)
LOOKS_LIKE_BIND = re.compile(r"^绑定.*(?:KS\d|学号)", re.I)
ACK_WORDS = {"1", "收到", "已收到", "收到了"}
# "通知发微信", "通知改发短信", "通知用手机": the channel (by its Chinese name) notices go to first
NOTICES_TO = re.compile(r"^通知(?:发到|改发|发|改|用)(\w{2,4})$")
PHONE_WORDS = {"短信", "手机"}
SENT_STATUSES = ("sent", "delivered", "read")
ACK_WINDOW = timedelta(days=7)
ACK_MEMORY_S = 7 * 24 * 3600  # as long as the pipeline's dedupe: a re-run within it is recognised
BIND_ATTEMPTS_PER_HOUR = 10  # "绑定 学号 姓名" tries per sender: guessing students' ids stays slow

BIND_FORMAT = "请按“绑定 学号 学生姓名”发送，例如：绑定 KS2026030215 王小明"
TOO_MANY = "绑定尝试次数过多，请1小时后再试，或联系孩子的班主任。"
NO_STUDENT = "没有找到学号{sid}、姓名{name}的学生，请核对后重新发送（学号和姓名须与学校登记一致）。"
NOT_ON_RECORD = (
    "您的手机号不是{school}为{name}登记的家长电话，无法绑定。如需登记或更换电话，请联系{school}{klass}班主任。"
)
NO_PHONE_ON_RECORD = "{school}没有登记{name}家长的手机号，请联系{klass}班主任登记后再绑定。"
BOUND_SMS = (
    "绑定成功！您已作为{name}（{school}{klass}）的家长接收学校通知，通知将发到本手机。回复“通知发微信”可改为微信接收。"
)
CODE_SENT = "验证码已发送到{school}登记的家长手机（尾号{tails}），请在5分钟内回复6位数字验证码。"
CODE_SMS = "您的验证码是{code}，5分钟内有效，用于在微信绑定{name}的家长身份。如非本人操作请忽略。"
EXHAUSTED = "验证码错误次数过多，请重新发送“绑定 学号 姓名”。"
BOUND_WECHAT = (
    "绑定成功！您的微信已关联{name}（{school}{klass}）的家长手机，学校通知将发到微信。回复“通知发短信”可改为短信接收。"
)
TO_ACCOUNT_DONE = "已设置：通知将优先发到{label}。回复“通知发短信”可改回短信。"
TO_SMS_DONE = "已设置：通知将发到短信（手机尾号{tail}）。回复“通知发微信”可改为微信。"
SMS_OPTED_OUT = "您此前退订了短信通知，请用手机发送“订阅”恢复。"
NO_ACCOUNT = "您还没有关联{label}：请关注“{service}”公众号，发送“绑定+手机号”验证后再设置。"
NO_PHONE = "您还没有关联手机号：请发送“绑定+手机号”，例如“绑定13912345678”，验证后再设置。"
ACKED = "已确认收到《{title}》"
MORE_TO_ACK = "您还有{n}条学校通知未确认，再回复“收到”可继续确认。"


def normalise(text: str) -> str:
    """Full-width to half-width, no spaces, no trailing punctuation: "收到！" and "收到" are one word."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"\s+", "", text).replace("•", "·").replace("・", "·")
    return text.rstrip("。.!！~～")


def _tail(phone: str) -> str:
    return phone[-4:]


@dataclass(frozen=True)
class Pupil:
    """A student with what a parent needs to hear about them."""

    id: str
    name: str
    school: str
    klass: str  # 三年级2班


class Schools:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        enqueue: Callable[[Outgoing], Awaitable[object]],
        wires: Wires,
    ) -> None:
        self.settings, self.sessions, self.state, self.enqueue = settings, sessions, state, enqueue
        self.wires = wires

    async def answer(self, message: InboundMessage, wire: Wire) -> list[Reply] | None:
        """Replies when the message is one of ours, None when it is meant for the menu or the bot.
        Only where notices arrive: that is where parents bind and acknowledge."""
        if not wire.carries_notices:
            return None
        text = normalise(message.text or "")
        found = BIND_ID_FIRST.match(text)
        if found:
            return [Reply(await self._bind(message, found.group(1).upper(), found.group(2)))]
        found = BIND_NAME_FIRST.match(text)
        if found:
            return [Reply(await self._bind(message, found.group(2).upper(), found.group(1)))]
        if LOOKS_LIKE_BIND.match(text):
            return [Reply(BIND_FORMAT)]
        if (target := self._notice_channel(text)) is not None:
            return [Reply(await self._choose_channel(message, target))]
        if CODE_RE.match(text):
            pending = await self.state.get_json(self._code_key(message))
            if pending:
                return [Reply(await self._check_code(message, pending, text))]
        if text in ACK_WORDS:
            reply = await self.acknowledge(message)
            if reply is not None:
                return [Reply(reply)]
        return None

    # --- binding a guardian ---------------------------------------------------------------------

    @staticmethod
    def _code_key(message: InboundMessage) -> str:
        return f"guardian-code:{message.channel}:{message.sender}"

    async def _pupil(self, db: AsyncSession, student_id: str, name: str) -> Pupil | None:
        row = (
            await db.exec(
                select(Student, SchoolClass, School)
                .join(SchoolClass, col(SchoolClass.id) == col(Student.class_id))
                .join(School, col(School.id) == col(SchoolClass.school_id))
                .where(Student.id == student_id)
            )
        ).first()
        # One answer for "no such id" and "wrong name": a stranger learns nothing about who studies where.
        if row is None or normalise(row[0].name) != name:
            return None
        student, klass, school = row
        return Pupil(student.id, student.name, school.name, klass.name)

    async def _guardians_on_record(self, db: AsyncSession, student_id: str) -> list[tuple[Guardian, Citizen]]:
        rows = await db.exec(
            select(Guardian, Citizen)
            .join(Citizen, col(Citizen.id) == col(Guardian.citizen_id))
            .where(Guardian.student_id == student_id, col(Citizen.phone).is_not(None))
            .order_by(col(Guardian.id))
        )
        return [(g, c) for g, c in rows.all()]

    async def _bind(self, message: InboundMessage, student_id: str, name: str) -> str:
        if await self.state.hit(f"guardian-bind:{message.channel}:{message.sender}", 3600) > BIND_ATTEMPTS_PER_HOUR:
            return TOO_MANY
        async with self.sessions() as db:
            pupil = await self._pupil(db, student_id, name)
            if pupil is None:
                return NO_STUDENT.format(sid=student_id, name=name)
            guardians = await self._guardians_on_record(db, student_id)
            if not guardians:
                return NO_PHONE_ON_RECORD.format(school=pupil.school, name=pupil.name, klass=pupil.klass)
            if self._by_phone(message):
                mine = [g for g, c in guardians if c.phone == message.sender]
                if not mine:
                    return NOT_ON_RECORD.format(school=pupil.school, name=pupil.name, klass=pupil.klass)
                await db.exec(update(Guardian).where(col(Guardian.id).in_([g.id for g in mine])).values(verified=True))
                await db.commit()
                return BOUND_SMS.format(name=pupil.name, school=pupil.school, klass=pupil.klass)
            # A WeChat user already bound to a guardian's phone ("绑定+手机号") has proved it: no code.
            already = set(await self._sender_citizens(db, message)) & {c.id for _, c in guardians}
            if already:
                await self._link(db, message, min(already), pupil.id)
                return BOUND_WECHAT.format(name=pupil.name, school=pupil.school, klass=pupil.klass)
        return await self._send_codes(message, pupil, [(c.id, c.phone) for _, c in guardians if c.phone])

    async def _send_codes(self, message: InboundMessage, pupil: Pupil, phones: list[tuple[int | None, str]]) -> str:
        """A different code to each guardian phone on record: the one that comes back says which
        parent is binding, without asking the sender to pick a phone number they may not know."""
        codes, sms = [], []
        for citizen_id, phone in phones:
            # The same per-phone limit as phone binding: one code per phone per minute, whatever asked.
            fresh = await new_code(self.state, phone)
            if fresh is None:
                continue
            code, stored = fresh
            codes.append({"citizen_id": citizen_id, "phone": phone, **stored})
            sms.append((phone, code))
        if not codes:
            return TOO_SOON
        await self.state.set_json(
            self._code_key(message), {"student_id": pupil.id, "tries": 0, "codes": codes}, CODE_TTL_S
        )
        for phone, code in sms:
            await send_code(
                self.enqueue,
                self.wires.phone,
                phone,
                CODE_SMS.format(code=code, name=pupil.name),
                str(NoticeRef(f"guardian-bind:{message.external_id}:{_tail(phone)}")),
            )
        return CODE_SENT.format(school=pupil.school, tails="、".join(_tail(p) for p, _ in sms))

    async def _check_code(self, message: InboundMessage, pending: dict, code: str) -> str:
        key = self._code_key(message)
        match = next((c for c in pending["codes"] if matches(code, c)), None)
        if match is None:
            return await wrong_try(self.state, key, pending, EXHAUSTED)
        await self.state.set_json(key, None, 1)
        async with self.sessions() as db:
            pupil = await self._link(db, message, match["citizen_id"], pending["student_id"])
        return BOUND_WECHAT.format(name=pupil.name, school=pupil.school, klass=pupil.klass)

    async def _link(self, db: AsyncSession, message: InboundMessage, citizen_id: int, student_id: str) -> Pupil:
        """The WeChat identity (and its conversations) now belong to the guardian's citizen, who is
        verified for this student and prefers WeChat from now on."""
        identity = (await conversations.open_conversation(db, message.channel, message.sender)).identity_id
        await db.exec(update(ChannelIdentity).where(col(ChannelIdentity.id) == identity).values(citizen_id=citizen_id))
        await db.exec(
            update(Conversation).where(col(Conversation.identity_id) == identity).values(citizen_id=citizen_id)
        )
        await db.exec(update(Citizen).where(col(Citizen.id) == citizen_id).values(preferred_channel=message.channel))
        await db.exec(
            update(Guardian)
            .where(col(Guardian.student_id) == student_id, col(Guardian.citizen_id) == citizen_id)
            .values(verified=True)
        )
        await db.commit()
        student = await db.get_one(Student, student_id)
        klass = await db.get_one(SchoolClass, student.class_id)
        school = await db.get_one(School, klass.school_id)
        # The pipeline caches the address's citizen: drop it so the next turn sees the guardian.
        await self.state.set_json(f"conv:{message.channel}:{message.sender}", None, 1)
        return Pupil(student.id, student.name, school.name, klass.name)

    def _by_phone(self, message: InboundMessage) -> bool:
        """The sender's address is a phone number its carrier vouches for (an SMS)."""
        return self.wires[message.channel].address_is_phone

    # --- which channel notices go to ------------------------------------------------------------

    async def _citizen(self, db: AsyncSession, message: InboundMessage) -> Citizen:
        """The sender's citizen: for SMS the owner of the phone number, else the address's citizen."""
        if self._by_phone(message):
            citizen_id = await citizen_for_phone(db, message.sender, message.channel)
        else:
            citizen_id = (await conversations.open_conversation(db, message.channel, message.sender)).citizen_id
        return await db.get_one(Citizen, citizen_id)

    def _notice_channel(self, text: str) -> Wire | None:
        found = NOTICES_TO.match(text)
        if found is None:
            return None
        if found.group(1) in PHONE_WORDS:
            return self.wires.phone
        return next((w for w in self.wires.values() if w.carries_notices and w.label == found.group(1)), None)

    async def _choose_channel(self, message: InboundMessage, target: Wire) -> str:
        async with self.sessions() as db:
            citizen = await self._citizen(db, message)
            addresses = (await db.exec(select(ChannelIdentity).where(ChannelIdentity.citizen_id == citizen.id))).all()
            if target.address_is_phone:
                phone = citizen.phone or next((a.address for a in addresses if a.channel == target.name), None)
                if phone is None:
                    return NO_PHONE
                reply = TO_SMS_DONE.format(tail=_tail(phone)) + (SMS_OPTED_OUT if citizen.sms_opted_out else "")
            else:
                if not any(a.channel == target.name for a in addresses):
                    return NO_ACCOUNT.format(label=target.label, service=pack().city.sms_signature)
                reply = TO_ACCOUNT_DONE.format(label=target.label)
            await db.exec(update(Citizen).where(col(Citizen.id) == citizen.id).values(preferred_channel=target.name))
            await db.commit()
        return reply

    # --- acknowledging a school notice ------------------------------------------------------------

    async def _sender_citizens(self, db: AsyncSession, message: InboundMessage) -> list[int]:
        """Every citizen this address speaks for: its identity's, and for SMS the phone's owner (the
        two differ when a phone texted before the school recorded it)."""
        ids = set(
            (
                await db.exec(
                    select(ChannelIdentity.citizen_id).where(
                        ChannelIdentity.channel == message.channel, ChannelIdentity.address == message.sender
                    )
                )
            ).all()
        )
        if self._by_phone(message):
            ids |= set((await db.exec(select(id_column(Citizen)).where(col(Citizen.phone) == message.sender))).all())
        return sorted(i for i in ids if i is not None)

    async def acknowledge(self, message: InboundMessage) -> str | None:
        """ "已确认收到《…》" when a school notice of the last seven days awaits this sender's
        acknowledgement, None when none does (then "1" is a menu choice)."""
        memory = f"school-ack:{message.channel}:{message.external_id}"
        done = await self.state.get_json(memory)
        if done:
            return done["reply"]
        sent_at = func.coalesce(
            BroadcastRecipient.updated_at, Broadcast.started_at, Broadcast.created_at
        )  # when it went out: the recipient row's last change, else the broadcast's start
        async with self.sessions() as db:
            citizens = await self._sender_citizens(db, message)
            mine = [col(BroadcastRecipient.citizen_id).in_(citizens)] if citizens else []
            waiting = (
                select(BroadcastRecipient.id, Broadcast.title)
                .join(Broadcast, col(Broadcast.id) == col(BroadcastRecipient.broadcast_id))
                .where(
                    Broadcast.kind == "school",
                    col(BroadcastRecipient.acked_at).is_(None),
                    col(BroadcastRecipient.status).in_(SENT_STATUSES),
                    sent_at >= utcnow() - ACK_WINDOW,
                    or_(
                        *mine,
                        and_(
                            col(BroadcastRecipient.channel) == message.channel,
                            col(BroadcastRecipient.address) == message.sender,
                        ),
                    ),
                )
                .order_by(sent_at.desc(), col(BroadcastRecipient.id).desc())
            )
            rows = (await db.exec(waiting)).all()
            if not rows:
                return None
            recipient_id, title = rows[0]
            await db.exec(
                update(BroadcastRecipient)
                .where(col(BroadcastRecipient.id) == recipient_id, col(BroadcastRecipient.acked_at).is_(None))
                .values(acked_at=utcnow())
            )
            await db.commit()
        reply = ACKED.format(title=title)
        if len(rows) > 1:
            reply += "。" + MORE_TO_ACK.format(n=len(rows) - 1)
        await self.state.set_json(memory, {"reply": reply}, ACK_MEMORY_S)
        return reply
