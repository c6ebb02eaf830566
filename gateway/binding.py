"""Binding a WeChat openid to a phone number with an SMS code, so one citizen is one identity across
channels (and WeChat answers can fall back to SMS outside the 48-hour window).

"绑定13912345678" → a six-digit code by SMS → the citizen replies the code within five minutes.
Codes are stored hashed, five wrong tries end the attempt, one code per phone per minute."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import InboundMessage, Outgoing, Reply
from gateway.config import Settings
from gateway.db.models import ChannelIdentity, Conversation
from gateway.delivery import citizen_for_phone
from gateway.logs import mask
from gateway.state import StateStore
from gateway.verification import CODE_RE, CODE_TTL_S, TOO_SOON, matches, new_code, send_code, wrong_try

BIND_RE = re.compile(r"^绑定(?:手机|手机号)?[:：]?(?:\+?86)?(1[3-9]\d{9})$")
SENT = "验证码已发送到{phone}，请在5分钟内回复6位数字验证码。"
SMS_TEXT = "您的验证码是{code}，5分钟内有效，用于绑定微信。如非本人操作请忽略。"
EXHAUSTED = "验证码错误次数过多，请重新发送“绑定+手机号”。"
BOUND = "绑定成功！手机号{phone}已与您的微信关联，通知会优先发到微信。"


class Binding:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        enqueue: Callable[[Outgoing], Awaitable[None]],
    ) -> None:
        self.settings, self.sessions, self.state, self.enqueue = settings, sessions, state, enqueue

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
        return None

    async def _send_code(self, key: str, message: InboundMessage, phone: str) -> str:
        fresh = await new_code(self.state, phone)
        if fresh is None:
            return TOO_SOON
        code, stored = fresh
        await self.state.set_json(key, {"phone": phone, **stored, "tries": 0}, CODE_TTL_S)
        await send_code(
            self.enqueue, self.settings, phone, SMS_TEXT.format(code=code), f"notice:bind:{message.external_id}"
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
            citizen_id = await citizen_for_phone(db, phone)
            identity = (
                await db.exec(
                    select(ChannelIdentity).where(
                        ChannelIdentity.channel == channel, ChannelIdentity.address == address
                    )
                )
            ).one()
            if identity.citizen_id != citizen_id:
                identity.citizen_id = citizen_id
                db.add(identity)
                await db.exec(
                    update(Conversation)
                    .where(col(Conversation.identity_id) == identity.id)
                    .values(citizen_id=citizen_id)
                )
            await db.commit()
        await self.state.set_json(f"conv:{channel}:{address}", None, 1)  # the pipeline's cached citizen is stale
