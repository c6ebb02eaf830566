"""Citizens, their channel identities and conversations, and the message log."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Rendering, Wire
from gateway.db.engine import saved_id
from gateway.db.models import ChannelIdentity, Citizen, Conversation, Message, utcnow


async def find_identity(db: AsyncSession, channel: str, address: str) -> ChannelIdentity | None:
    query = select(ChannelIdentity).where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
    return (await db.exec(query)).first()


def outbound_rows(
    wire: Wire, channel: str, conversation_id: str, rendering: Rendering, in_reply_to: int | None = None
) -> list[Message]:
    """A rendering's messages as the log records them: sent already when the channel answers in the
    request, else queued for the dispatcher (in the same transaction as what they answer)."""
    status = "sent" if wire.answers_in_request else "queued"
    return [
        Message(
            conversation_id=conversation_id,
            direction="out",
            channel=channel,
            text=r.text,
            buttons=r.buttons or None,
            segments=r.segments,
            status=status,
            in_reply_to=in_reply_to,
        )
        for r in rendering.messages
    ]


async def open_conversation(db: AsyncSession, channel: str, address: str) -> Conversation:
    """The citizen's current conversation on this channel address, created on first contact."""
    identity = await find_identity(db, channel, address)
    if identity is None:
        try:
            citizen = Citizen()
            db.add(citizen)
            await db.flush()
            identity = ChannelIdentity(channel=channel, address=address, citizen_id=saved_id(citizen))
            db.add(identity)
            await db.flush()
        except IntegrityError:  # another process created it first
            await db.rollback()
            return await open_conversation(db, channel, address)
    conversation = (
        await db.exec(
            select(Conversation)
            .where(Conversation.identity_id == identity.id)
            .order_by(col(Conversation.started_at).desc())
        )
    ).first()
    if conversation is None:
        conversation = Conversation(
            id=uuid.uuid4().hex, citizen_id=identity.citizen_id, identity_id=saved_id(identity), channel=channel
        )
        db.add(conversation)
    identity.last_seen_at = conversation.last_active_at = utcnow()
    db.add(identity)
    await db.commit()
    return conversation


async def citizen_for_phone(db: AsyncSession, phone: str, channel: str) -> int:
    """The citizen who owns this phone number: by their bound phone, else their identity on the phone
    channel (`channel`, created on first contact, with the phone recorded)."""
    citizen = (await db.exec(select(Citizen).where(Citizen.phone == phone))).first()
    if citizen is not None and citizen.id is not None:
        return citizen.id
    conversation = await open_conversation(db, channel, phone)
    found = await db.get(Citizen, conversation.citizen_id)
    if found is not None and found.phone is None:
        found.phone = phone
        db.add(found)
        await db.commit()
    return conversation.citizen_id


async def find_inbound(db: AsyncSession, channel: str, external_id: str) -> Message | None:
    return (
        await db.exec(
            select(Message).where(
                Message.channel == channel, Message.direction == "in", Message.external_id == external_id
            )
        )
    ).first()


async def replies_to(db: AsyncSession, message_id: int) -> list[Message]:
    return list(
        (await db.exec(select(Message).where(Message.in_reply_to == message_id).order_by(col(Message.id)))).all()
    )


async def history(db: AsyncSession, channel: str, address: str, limit: int) -> list[dict[str, Any]]:
    """The latest messages of this address's conversations, oldest first."""
    rows = (
        await db.exec(
            select(Message)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .join(ChannelIdentity, col(ChannelIdentity.id) == col(Conversation.identity_id))
            .where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
            .order_by(col(Message.id).desc())
            .limit(limit)
        )
    ).all()
    # "at" (UTC, ISO 8601) lets the page show each message's time in the citizen's own time zone.
    return [
        {"direction": m.direction, "text": m.text, "buttons": m.buttons or [], "at": m.created_at.isoformat()}
        for m in reversed(rows)
    ]


async def citizen_of(db: AsyncSession, conversation_id: str) -> int:
    conversation = await db.get(Conversation, conversation_id)
    if conversation is None:
        raise LookupError(conversation_id)
    return conversation.citizen_id


async def verified_phone(db: AsyncSession, wire: Wire, address: str, citizen_id: int) -> str | None:
    """The phone the citizen on this channel address has proved they hold, for personal records (the
    action server reads it from the turn's metadata). Proof is an SMS from the phone (the carrier vouches
    for the sender) or an SMS code answered (WeChat and web chat binding, guardians), which is the only
    way a citizen's phone is recorded; a web chat session that bound none has none. On a channel whose
    proofs lapse (web chat: wire.phone_proof_days), one older than that counts as none: asked again."""
    if wire.address_is_phone:  # the number the carrier delivered from: nothing to read
        return address
    citizen = await db.get(Citizen, citizen_id)
    if citizen is None or citizen.phone is None:
        return None
    if wire.phone_proof_days is not None:
        query = select(ChannelIdentity.phone_proved_at).where(
            ChannelIdentity.channel == wire.name, ChannelIdentity.address == address
        )
        proved = (await db.exec(query)).first()
        if proved is None or utcnow() - proved.replace(tzinfo=proved.tzinfo or UTC) > timedelta(
            days=wire.phone_proof_days
        ):
            return None
    return citizen.phone
