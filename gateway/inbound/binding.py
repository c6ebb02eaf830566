"""Binding a WeChat openid or a web chat session to a phone number with an SMS code: one citizen is one
identity across channels (WeChat answers can fall back to SMS outside the 48-hour window), and the phone
is proven, which is what personal records ask for (intents: `personal` services).

"绑定13912345678" → a six-digit code by SMS → the citizen replies the code within five minutes.
Codes are stored hashed, five wrong tries end the attempt, one code per phone per minute.
"退出登录" ends it: the session or openid becomes a new, anonymous citizen again."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import InboundMessage, Outgoing, Reply
from channels.sms.wire import SmsWire
from gateway.config import Settings
from gateway.db.conversations import citizen_for_phone
from gateway.db.engine import saved_id
from gateway.db.models import ChannelIdentity, Citizen, Conversation, utcnow
from gateway.inbound.verification import CODE_RE, CODE_TTL_S, TOO_SOON, matches, new_code, send_code, wrong_try
from gateway.logs import mask
from gateway.outbound.refs import NoticeRef
from gateway.state import StateStore

BIND_RE = re.compile(r"^(?:绑定|验证)(?:手机|手机号)?[:：]?(?:\+?86)?(1[3-9]\d{9})$")
LOGOUT_RE = re.compile(r"^(?:退出登录|退出登陆|解除绑定|解绑|退出验证)$")
SENT = "验证码已发送到{phone}，请在5分钟内回复6位数字验证码。"
SMS_TEXT = "您的验证码是{code}，5分钟内有效，用于验证您的手机号。如非本人操作请忽略。"
EXHAUSTED = "验证码错误次数过多，请重新发送“绑定+手机号”。"
BOUND = (
    "绑定成功！手机号{phone}已验证：可以查询本人的社保、公积金等个人信息，通知会优先发到这里。发送“退出登录”可解除。"
)
LOGGED_OUT = "已退出登录，本会话不再关联您的手机号。"
NOT_BOUND = "本会话没有关联手机号，无需退出。"


class Binding:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        enqueue: Callable[[Outgoing], Awaitable[object]],
        phone: SmsWire,
    ) -> None:
        self.settings, self.sessions, self.state, self.enqueue = settings, sessions, state, enqueue
        self.phone = phone  # the channel codes go out on

    async def answer(self, message: InboundMessage) -> list[Reply] | None:
        """Replies when the message is a binding step, None when it is meant for the assistant."""
        text = unicodedata.normalize("NFKC", message.text).replace(" ", "").strip()
        key = f"bind:{message.channel}:{message.sender}"
        if found := BIND_RE.match(text):
            return [Reply(await self._send_code(key, message, f"+86{found.group(1)}"))]
        if CODE_RE.match(text):
            pending = await self.state.get_json(key)
            if pending:
                return [Reply(await self._check(key, message, pending, text))]
        if LOGOUT_RE.match(text):
            return [Reply(await self._unlink(message.channel, message.sender))]
        return None

    async def _send_code(self, key: str, message: InboundMessage, phone: str) -> str:
        fresh = await new_code(self.state, phone)
        if fresh is None:
            return TOO_SOON
        code, stored = fresh
        await self.state.set_json(key, {"phone": phone, **stored, "tries": 0}, CODE_TTL_S)
        await send_code(
            self.enqueue, self.phone, phone, SMS_TEXT.format(code=code), str(NoticeRef(f"bind:{message.external_id}"))
        )
        return SENT.format(phone=mask(phone))

    async def _check(self, key: str, message: InboundMessage, pending: dict, code: str) -> str:
        if not matches(code, pending):
            return await wrong_try(self.state, key, pending, EXHAUSTED)
        await self.state.set_json(key, None, 1)
        await self._link(message.channel, message.sender, pending["phone"])
        return BOUND.format(phone=mask(pending["phone"]))

    async def _link(self, channel: str, address: str, phone: str) -> None:
        async with self.sessions() as db:
            await self._move(db, channel, address, await citizen_for_phone(db, phone, self.phone.name), proved=True)

    async def _unlink(self, channel: str, address: str) -> str:
        async with self.sessions() as db:
            identity = await self._identity(db, channel, address)
            citizen = await db.get(Citizen, identity.citizen_id) if identity else None
            if citizen is None or citizen.phone is None:
                return NOT_BOUND
            anonymous = Citizen()
            db.add(anonymous)
            await db.flush()
            await self._move(db, channel, address, saved_id(anonymous))
        return LOGGED_OUT

    @staticmethod
    async def _identity(db: AsyncSession, channel: str, address: str) -> ChannelIdentity | None:
        query = select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
        return (await db.exec(query)).first()

    async def _move(self, db: AsyncSession, channel: str, address: str, citizen_id: int, proved: bool = False) -> None:
        """The channel identity (and its conversations) now belong to this citizen; `proved`: by the code
        just answered (a channel whose proofs lapse counts from now)."""
        identity = await self._identity(db, channel, address)
        if identity is not None:
            identity.phone_proved_at = utcnow() if proved else None
            db.add(identity)
        if identity is not None and identity.citizen_id != citizen_id:
            identity.citizen_id = citizen_id
            db.add(identity)
            await db.exec(
                update(Conversation).where(col(Conversation.identity_id) == identity.id).values(citizen_id=citizen_id)
            )
        await db.commit()
        await self.state.set_json(f"conv:{channel}:{address}", None, 1)  # the pipeline's cached citizen is stale
