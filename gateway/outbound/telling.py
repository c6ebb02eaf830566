"""Words for a citizen outside a bot turn (a person's reply, a payment's outcome, a work order's new
status), sent the way bot replies go: rendered by the channel's wire (SMS segments and signature,
WeChat's window and fallback), recorded in the conversation's message log, then queued for the dispatcher
with the message's ref (the ledger writes the outcome); on a channel that answers in the request (web
chat) published to the citizen's open page instead."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Outgoing, Reply
from channels.webchat.handler import topic
from gateway.db import conversations
from gateway.db.models import ChannelIdentity, Conversation, Message
from gateway.outbound.refs import MessageRef
from gateway.state import StateStore
from gateway.wires import Wires

Enqueue = Callable[[Outgoing], Awaitable[object]]


class Addressee(Protocol):
    """Where a citizen is answered: a handoff ticket, a work order's or an order's conversation."""

    @property
    def channel(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def conversation_id(self) -> str: ...


@dataclass(frozen=True)
class Conversant:
    """An addressee known by its parts."""

    channel: str
    address: str
    conversation_id: str


async def conversant(db: AsyncSession, conversation_id: str | None) -> Conversant | None:
    """The channel and address a conversation is held on (None when it, or its identity, is gone)."""
    conversation = await db.get(Conversation, conversation_id) if conversation_id else None
    identity = await db.get(ChannelIdentity, conversation.identity_id) if conversation else None
    if conversation is None or identity is None:
        return None
    return Conversant(identity.channel, identity.address, conversation.id)


class Teller:
    def __init__(self, wires: Wires, enqueue: Enqueue, state: StateStore) -> None:
        self.wires, self.enqueue, self.state = wires, enqueue, state

    async def tell(self, db: AsyncSession, to: Addressee, text: str) -> list[Message]:
        """Record the replies (committed with whatever db holds) and hand them on; returns the rows."""
        wire = self.wires[to.channel]
        rows = conversations.outbound_rows(wire, to.channel, to.conversation_id, wire.render([Reply(text)]))
        db.add_all(rows)
        await db.commit()  # recorded before it leaves: a crash cannot send what the log does not show
        for row in rows:
            assert row.id is not None
            if wire.answers_in_request:  # web chat: to the citizen's open page
                frame = {"type": "reply", "in_reply_to": None, "text": row.text, "buttons": row.buttons or []}
                await self.state.publish(topic(to.address), frame)
            else:
                outgoing = Outgoing(
                    channel=to.channel,
                    to=to.address,
                    text=row.text,
                    ref=str(MessageRef(row.id)),
                    segments=row.segments or 1,
                )
                await self.enqueue(outgoing)
        return rows
