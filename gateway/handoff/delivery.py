"""A person's words to a citizen, on the citizen's channel, the way bot replies go: rendered by the
channel's wire (SMS segments and signature, WeChat's window and fallback), recorded in the conversation's
message log, then queued for the dispatcher with the message's ref (the ledger writes the outcome); on a
channel that answers in the request (web chat) published to the citizen's open page instead.

It also carries the inbox's live feed: new waiting tickets and citizens' messages, for the console."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Outgoing, Reply
from channels.webchat.handler import topic
from gateway.db import conversations
from gateway.db.models import Handoff, Message
from gateway.outbound.refs import MessageRef
from gateway.state import StateStore
from gateway.wires import Wires

FEED = "handoff:feed"  # the state store's pub/sub topic the console's event stream reads

Enqueue = Callable[[Outgoing], Awaitable[object]]


class Addressee(Protocol):
    """Where a citizen is answered: a handoff ticket, or a work order's conversation."""

    @property
    def channel(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def conversation_id(self) -> str: ...


class Delivery:
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

    async def announce(self, kind: str, handoff: Handoff, **detail: Any) -> None:
        """Tell open consoles: "waiting" (a new or transferred ticket), "message" (the citizen wrote),
        "claimed", "closed". No contact details: the console fetches what it may show."""
        event = {"type": kind, "handoff": handoff.id, "number": handoff.number, "team": handoff.team, **detail}
        await self.state.publish(FEED, event)
