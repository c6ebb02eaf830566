"""What the dispatcher learns about outbound messages, written to the message log
(gateway.outbound.dispatcher.DeliveryLog), and the citizen facts it needs: SMS opt-outs and bound
phone numbers for fallback.

Refs name the record an outbound message belongs to: "message:<id>" is a row of the message log;
"recipient:<id>" is one citizen of a broadcast (BroadcastRecipient); "notice:<…>" is a one-off notice
(a refusal, a verification code) kept in no table.

Recipient refs are handled by gateway.broadcast.deliveries.RecipientLog (including the WeChat → SMS
fallback of broadcasts)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Outgoing, SendResult, StatusUpdate
from channels.sms.segments import cut
from gateway import conversations
from gateway.broadcast.deliveries import RecipientLog
from gateway.config import Settings
from gateway.db.models import ChannelIdentity, Citizen, Conversation, Message, utcnow

log = logging.getLogger(__name__)

FINAL = {"sent", "delivered", "undelivered", "failed", "read"}
# Twilio reports in any order; a late "sent" must not overwrite "delivered".
STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "undelivered": 3, "failed": 3, "delivered": 4, "read": 5}
STATUS_RETRY_S = (0.2, 0.5, 1.0)  # waits before looking an unknown provider id up again


def _ref_id(ref: str, kind: str) -> int | None:
    prefix, _, ident = ref.partition(":")
    return int(ident) if prefix == kind and ident.isdigit() else None


def _message_id(ref: str) -> int | None:
    return _ref_id(ref, "message")


def _recipient_id(ref: str) -> int | None:
    return _ref_id(ref, "recipient")


class SqlDeliveryLog:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        enqueue: Callable[[Outgoing], Awaitable[Any]] | None = None,
    ) -> None:
        self.settings, self.sessions = settings, sessions
        # enqueue: the outbound queue's add, where a broadcast's SMS fallback goes
        self.recipients = RecipientLog(settings, sessions, enqueue)

    async def should_send(self, ref: str) -> bool:
        """False for a message already sent or failed for good (a redelivered stream entry), and for
        a broadcast recipient whose broadcast was cancelled."""
        if (recipient_id := _recipient_id(ref)) is not None:
            return await self.recipients.should_send(recipient_id)
        message_id = _message_id(ref)
        if message_id is None:
            return True  # one-off notices are recorded nowhere else
        async with self.sessions() as db:
            row = await db.get(Message, message_id)
            return row is not None and row.status not in FINAL

    async def sent(self, ref: str, result: SendResult, message: Outgoing) -> None:
        if (recipient_id := _recipient_id(ref)) is not None:
            await self.recipients.sent(recipient_id, result, message)
            return
        await self._update(ref, status="sent", external_id=result.provider_id, segments=message.segments, error=None)

    async def retrying(self, ref: str, attempt: int, reason: str, code: str | None, delay_s: float) -> None:
        if (recipient_id := _recipient_id(ref)) is not None:
            await self.recipients.retrying(recipient_id, attempt, reason)
            return
        await self._update(ref, error=f"try {attempt} failed: {reason}"[:255])

    async def failed(self, ref: str, kind: str, reason: str, code: str | None) -> None:
        log.warning("gave up on %s: %s: %s", ref, kind, reason)
        if (recipient_id := _recipient_id(ref)) is not None:
            await self.recipients.failed(recipient_id, kind, reason)
            return
        await self._update(ref, status="failed", error=f"{kind}: {reason}"[:255])
        if kind == "opted_out":  # Twilio 21610: the carrier already stopped us; remember it
            phone = await self._sms_address(ref)
            if phone:
                await self.set_sms_opt_out(phone, True)

    async def fallback(self, message: Outgoing) -> Outgoing | None:
        """WeChat's 48-hour window is closed: a template message when one is configured, else an SMS
        to the citizen's bound phone, else nothing (recorded as failed)."""
        if (recipient_id := _recipient_id(message.ref)) is not None:
            if message.channel != "wechat":
                return None
            return await self.recipients.fallback(recipient_id)
        if message.channel != "wechat" or message.template is not None:
            return None
        if self.settings.wechat_template_id:
            data = {"content": {"value": message.text[:200]}}
            return replace(message, template={"template_id": self.settings.wechat_template_id, "data": data})
        async with self.sessions() as db:
            phone = await _bound_phone(db, message.to)
        if phone is None:
            return None
        sms = cut(message.text, self.settings.sms_max_segments, self.settings.sms_signature)
        return replace(message, channel="sms", to=phone, text=sms.sent, segments=sms.segments, attempt=0)

    async def status(self, update_: StatusUpdate) -> None:
        """A provider's delivery report for a message it accepted earlier. The report can overtake
        our record of the send (the provider calls back before sent() has committed), so a provider
        id we do not know yet is looked up again a few times before the report is dropped."""
        for wait in (*STATUS_RETRY_S, None):
            if await self.recipients.status(update_) or await self._message_status(update_):
                return
            if wait is None:
                log.info("status %s for an unknown provider id %s: dropped", update_.status, update_.provider_id)
                return
            await asyncio.sleep(wait)

    async def _message_status(self, update_: StatusUpdate) -> bool:
        async with self.sessions() as db:
            row = (
                await db.exec(
                    select(Message).where(
                        Message.channel == update_.channel,
                        Message.direction == "out",
                        Message.external_id == update_.provider_id,
                    )
                )
            ).first()
            if row is None:  # a fallback SMS is recorded on its WeChat row: look there too
                row = (
                    await db.exec(
                        select(Message).where(Message.direction == "out", Message.external_id == update_.provider_id)
                    )
                ).first()
            if row is None:
                return False
            if STATUS_RANK.get(update_.status, 0) < STATUS_RANK.get(row.status, 0):
                return True
            row.status = update_.status
            row.error = f"provider error {update_.error_code}" if update_.error_code else row.error
            row.updated_at = utcnow()
            db.add(row)
            await db.commit()
            return True

    async def set_sms_opt_out(self, phone: str, opted_out: bool) -> None:
        async with self.sessions() as db:
            citizen_id = await citizen_for_phone(db, phone)
            await db.exec(update(Citizen).where(col(Citizen.id) == citizen_id).values(sms_opted_out=opted_out))
            await db.commit()

    async def _sms_address(self, ref: str) -> str | None:
        message_id = _message_id(ref)
        if message_id is None:
            return None
        async with self.sessions() as db:
            return (
                await db.exec(
                    select(ChannelIdentity.address)
                    .join(Conversation, col(Conversation.identity_id) == col(ChannelIdentity.id))
                    .join(Message, col(Message.conversation_id) == col(Conversation.id))
                    .where(Message.id == message_id, ChannelIdentity.channel == "sms")
                )
            ).first()

    async def _update(self, ref: str, **values: object) -> None:
        message_id = _message_id(ref)
        if message_id is None:
            return
        async with self.sessions() as db:
            await db.exec(
                update(Message)
                .where(col(Message.id) == message_id)
                .values(attempts=Message.attempts + 1, updated_at=utcnow(), **values)
            )
            await db.commit()


async def citizen_for_phone(db: AsyncSession, phone: str) -> int:
    """The citizen who owns this phone number: by their bound phone, else their SMS identity
    (created on first contact, with the phone recorded)."""
    citizen = (await db.exec(select(Citizen).where(Citizen.phone == phone))).first()
    if citizen is not None:
        return citizen.id
    conversation = await conversations.open_conversation(db, "sms", phone)
    citizen = await db.get(Citizen, conversation.citizen_id)
    if citizen.phone is None:
        citizen.phone = phone
        db.add(citizen)
        await db.commit()
    return citizen.id


async def _bound_phone(db: AsyncSession, openid: str) -> str | None:
    return (
        await db.exec(
            select(Citizen.phone)
            .join(ChannelIdentity, col(ChannelIdentity.citizen_id) == col(Citizen.id))
            .where(ChannelIdentity.channel == "wechat", ChannelIdentity.address == openid)
        )
    ).first()
