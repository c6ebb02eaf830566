"""The one delivery ledger: what the dispatcher learns about every outbound message (a reply, a
broadcast or school notice, a one-off notice), written where the message is recorded — a reply on its
row of the conversation log, a broadcast on its recipient row, a one-off notice nowhere else.

One status order for both, one opt-out writer (the citizen's SMS opt-out, from a failed send or a
provider's report), and one fallback policy: a message that cannot go out on a channel that falls back
to the phone (WeChat, web push) goes to the citizen's phone by SMS instead, unless it is a notice that
is not an emergency and the citizen opted out of SMS."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Outgoing, SendResult, StatusUpdate
from gateway import metrics
from gateway.config import Settings
from gateway.db.conversations import citizen_for_phone
from gateway.db.models import ChannelIdentity, Citizen, Conversation, Message, utcnow
from gateway.outbound.recipients import RecipientRecords
from gateway.outbound.refs import MessageRef, RecipientRef, parse
from gateway.wires import Wires

log = logging.getLogger(__name__)

# Providers report in any order; a late "sent" must not overwrite "delivered".
STATUS_ORDER = {"queued": 0, "sending": 1, "sent": 2, "undelivered": 3, "failed": 3, "delivered": 4, "read": 5}
FINAL = {"sent", "delivered", "undelivered", "failed", "read"}
STATUS_RETRY_S = (0.2, 0.5, 1.0)  # waits before looking an unknown provider id up again


def overtakes(new: str, recorded: str) -> bool:
    """Whether a report of `new` replaces what the ledger recorded."""
    return STATUS_ORDER.get(new, 0) > STATUS_ORDER.get(recorded, 0)


class Ledger:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], wires: Wires) -> None:
        self.settings, self.sessions, self.wires = settings, sessions, wires
        self.recipients = RecipientRecords(settings, sessions, overtakes)

    async def should_send(self, ref: str) -> bool:
        """False for a message already sent or failed for good (a redelivered stream entry), and for a
        broadcast recipient whose broadcast was cancelled."""
        match parse(ref):
            case RecipientRef(id=recipient_id):
                return await self.recipients.should_send(recipient_id)
            case MessageRef(id=message_id):
                async with self.sessions() as db:
                    row = await db.get(Message, message_id)
                    return row is not None and row.status not in FINAL
        return True  # one-off notices are recorded nowhere else

    async def sent(self, ref: str, result: SendResult, message: Outgoing) -> None:
        match parse(ref):
            case RecipientRef(id=recipient_id):
                await self.recipients.sent(recipient_id, result, message)
            case MessageRef(id=message_id):
                await self._update(
                    message_id, status="sent", external_id=result.provider_id, segments=message.segments, error=None
                )

    async def retrying(self, ref: str, attempt: int, reason: str, code: str | None, delay_s: float) -> None:
        match parse(ref):
            case RecipientRef(id=recipient_id):
                await self.recipients.note(recipient_id, f"try {attempt} failed: {reason}")
            case MessageRef(id=message_id):
                await self._update(message_id, error=f"try {attempt} failed: {reason}"[:255])

    async def failed(self, ref: str, kind: str, reason: str, code: str | None) -> None:
        log.warning("gave up on %s: %s: %s", ref, kind, reason)
        error = f"{kind}: {reason}"[:255]
        match parse(ref):
            case RecipientRef(id=recipient_id):
                row = await self.recipients.failed(recipient_id, error)
                if kind == "opted_out" and row is not None:  # the carrier already stopped us (Twilio 21610)
                    await self._opted_out_citizen(*row)
            case MessageRef(id=message_id):
                await self._update(message_id, status="failed", error=error)
                if kind == "opted_out":
                    await self._opted_out_address(*await self._address_of(message_id))

    async def fallback(self, message: Outgoing, kind: str, reason: str) -> Outgoing | None:
        """What goes in place of a message its channel could not deliver: the channel's own second try
        (a WeChat template once the 48-hour window closed), else the citizen's phone by SMS when the
        channel falls back to it, else None (recorded as failed)."""
        wire = self.wires[message.channel]
        if kind == "window_closed" and (own := wire.window_closed(message)) is not None:
            return own
        if not wire.falls_back_to_phone:
            return None
        why = kind if kind == "window_closed" else f"{kind}: {reason}"
        match parse(message.ref):
            case RecipientRef(id=recipient_id):
                return await self.recipients.switch_to_phone(recipient_id, why, self.wires.phone, wire.label)
            case MessageRef():
                async with self.sessions() as db:
                    phone = await _bound_phone(db, message.channel, message.to)
                if phone is None:
                    return None
                sms = self.wires.phone.fitted(message.text)  # a reply: cut like every SMS answer
                return replace(
                    message,
                    channel=self.wires.phone.name,
                    to=phone,
                    text=sms.text,
                    segments=sms.segments or 1,
                    attempt=0,
                )
        return None

    async def status(self, update_: StatusUpdate) -> None:
        """A provider's delivery report for a message it accepted earlier. The report can overtake our
        record of the send (the provider calls back before sent() has committed), so a provider id we do
        not know yet is looked up again a few times before the report is dropped."""
        metrics.DELIVERY_REPORTS.labels(update_.channel, update_.status).inc()
        for wait in (*STATUS_RETRY_S, None):
            if (row := await self.recipients.status(update_)) is not None:
                if update_.opted_out:
                    await self._opted_out_citizen(*row)
                return
            if (address := await self._message_status(update_)) is not None:
                if update_.opted_out:
                    await self._opted_out_address(*address)
                return
            if wait is None:
                log.info("status %s for an unknown provider id %s: dropped", update_.status, update_.provider_id)
                return
            await asyncio.sleep(wait)

    # --- opt-outs: the one writer ------------------------------------------------------------------

    async def opt_out(self, citizen_id: int, opted_out: bool) -> None:
        async with self.sessions() as db:
            await db.exec(update(Citizen).where(col(Citizen.id) == citizen_id).values(sms_opted_out=opted_out))
            await db.commit()

    async def set_sms_opt_out(self, phone: str, opted_out: bool) -> None:
        """TD / 订阅 from a phone."""
        async with self.sessions() as db:
            citizen_id = await citizen_for_phone(db, phone, self.wires.phone.name)
        await self.opt_out(citizen_id, opted_out)

    async def _opted_out_citizen(self, citizen_id: int, channel: str) -> None:
        if self.wires[channel].address_is_phone:
            await self.opt_out(citizen_id, True)

    async def _opted_out_address(self, channel: str | None, address: str | None) -> None:
        if channel is not None and address is not None and self.wires[channel].address_is_phone:
            await self.set_sms_opt_out(address, True)

    # --- the conversation log's rows ---------------------------------------------------------------

    async def _message_status(self, update_: StatusUpdate) -> tuple[str | None, str | None] | None:
        """The report written on its row; the (channel, address) the row's conversation is with, None
        when no row has this provider id."""
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
            if row is None:  # a fallback SMS is recorded on the row of the message it replaced: look there too
                row = (
                    await db.exec(
                        select(Message).where(Message.direction == "out", Message.external_id == update_.provider_id)
                    )
                ).first()
            if row is None:
                return None
            if overtakes(update_.status, row.status):
                row.status = update_.status
                row.error = f"provider error {update_.error_code}" if update_.error_code else row.error
                row.updated_at = utcnow()
                db.add(row)
                await db.commit()
            message_id = row.id
        assert message_id is not None
        return await self._address_of(message_id)

    async def _address_of(self, message_id: int) -> tuple[str | None, str | None]:
        """(channel, address) of the identity the message's conversation is with."""
        async with self.sessions() as db:
            found = (
                await db.exec(
                    select(ChannelIdentity.channel, ChannelIdentity.address)
                    .join(Conversation, col(Conversation.identity_id) == col(ChannelIdentity.id))
                    .join(Message, col(Message.conversation_id) == col(Conversation.id))
                    .where(Message.id == message_id)
                )
            ).first()
        return (found[0], found[1]) if found else (None, None)

    async def _update(self, message_id: int, **values: object) -> None:
        async with self.sessions() as db:
            await db.exec(
                update(Message)
                .where(col(Message.id) == message_id)
                .values(attempts=Message.attempts + 1, updated_at=utcnow(), **values)
            )
            await db.commit()


async def _bound_phone(db: AsyncSession, channel: str, address: str) -> str | None:
    """The phone the citizen behind this address has proved they hold."""
    return (
        await db.exec(
            select(Citizen.phone)
            .join(ChannelIdentity, col(ChannelIdentity.citizen_id) == col(Citizen.id))
            .where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
        )
    ).first()
