"""The inbound path's entry points. A channel that answers in the request (web chat) calls
`Inbound.handle`; a webhook channel calls `Intake.accept`, which queues the message durably so the
webhook is acknowledged in milliseconds, and a TurnRunner later calls `Inbound.process`. Both dedupe
once (Seen, on the channel's message id), then run the same steps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from channels.base import InboundMessage, Outgoing, Reply, TurnResult, Wire
from common import trace
from gateway import metrics
from gateway.inbound.inbox import Seen
from gateway.inbound.responders import Answered, MenuMemory, Responder
from gateway.inbound.turn import Turns
from gateway.outbound.refs import MessageRef, NoticeRef
from gateway.wires import Wires

log = logging.getLogger(__name__)

Enqueue = Callable[[Outgoing], Awaitable[object]]
WAIT = "您的上一条消息还在处理中，请等回复后再发送。"
MAX_WAITING = 2  # turns of one conversation waiting behind the running one; more are told to wait


class ConversationQueue:
    """One turn at a time per conversation, in arrival order: Rasa runs a conversation's turns one by one
    anyway, so a burst from one citizen would only pile up there, pass the timeout and open the breaker
    for everybody. A burst beyond MAX_WAITING is told to wait instead. Per process: across gateway
    processes, Rasa's lock store keeps a conversation's turns in order."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, message: InboundMessage) -> AsyncIterator[bool]:
        key = f"{message.channel}:{message.sender}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked() and self._waiting.get(key, 0) >= MAX_WAITING:
            yield False
            return
        self._waiting[key] = self._waiting.get(key, 0) + 1
        running = False
        try:
            async with lock:
                running = True
                self._waiting[key] -= 1
                yield True
        finally:
            if not running:  # cancelled while waiting
                self._waiting[key] -= 1
            if self._waiting.get(key) == 0 and not lock.locked():
                self._waiting.pop(key, None)
                self._locks.pop(key, None)


class Inbound:
    def __init__(
        self,
        wires: Wires,
        seen: Seen,
        turns: Turns,
        responders: list[Responder],
        memory: MenuMemory,
        enqueue: Enqueue,
    ) -> None:
        self.wires, self.seen, self.turns, self.responders, self.memory = wires, seen, turns, responders, memory
        self.enqueue = enqueue
        self.queue = ConversationQueue()

    async def handle(self, message: InboundMessage) -> TurnResult:
        """A message answered in its own request: the result carries the replies (MessageHandler)."""
        # one trace id per message: a web chat socket carries many messages in one request
        with trace.bound(None):
            return await self._handle(message)

    async def _handle(self, message: InboundMessage) -> TurnResult:
        wire = self.wires[message.channel]
        if not await self.seen.first_time(message):
            metrics.INBOUND_DUPLICATES.labels(message.channel).inc()
            return await self.turns.replay(message, wire)
        metrics.INBOUND_MESSAGES.labels(message.channel).inc()
        try:
            result = await self._turn(message, wire)
        except BaseException:
            await self.seen.forget(message)  # nothing was recorded: let the browser's retry through
            raise
        if result.refusal:
            await self.seen.forget(message)  # nothing was recorded either
        # answered in the request: sent as soon as the handler returns them
        metrics.OUTBOUND_MESSAGES.labels(message.channel, "sent").inc(len(result.outbound))
        return result

    async def process(self, message: InboundMessage) -> None:
        """A queued message's turn, its replies handed to the dispatcher (run by a TurnRunner; safe to
        run twice: the turn answers a recorded message from the log, the dispatcher skips sent replies)."""
        wire = self.wires[message.channel]
        result = await self._turn(message, wire)
        if result.refusal:
            if result.refusal_code != "rate_limited":  # say why (empty, too long); a flood gets nothing back
                await self.enqueue(self._notice(message, wire, result.refusal))
            return
        for record in result.outbound:
            if record.status == "queued":
                await self.enqueue(
                    Outgoing(
                        channel=message.channel,
                        to=message.sender,
                        text=record.text,
                        ref=str(MessageRef(record.message_id)),
                        segments=record.segments or 1,
                        trace_id=trace.current() or "",
                    )
                )

    # --- the steps every message takes ---------------------------------------------------------

    async def _turn(self, message: InboundMessage, wire: Wire) -> TurnResult:
        answered = await self._respond(message, wire)
        message = answered.message
        refusal = await self.turns.refusal(message)
        if refusal is not None:
            return refusal
        async with self.queue.turn(message) as admitted:
            if not admitted:
                return TurnResult([], refusal=WAIT, refusal_code="busy")
            result = await self.turns.take(message, wire, answered.replies)
        if wire.numbered_menus and result.rendering is not None and result.rendering.messages:
            await self.memory.remember(message, result.rendering, answered.continues)
        return result

    async def _respond(self, message: InboundMessage, wire: Wire) -> Answered:
        for responder in self.responders:
            answered = await responder(message, wire)
            if answered is not None:
                return answered
        return Answered(message, None)

    def _notice(self, message: InboundMessage, wire: Wire, text: str) -> Outgoing:
        """A refusal: not part of the conversation log, so it is recorded nowhere but the dispatcher's."""
        rendered = wire.render([Reply(text)]).messages[0]
        return Outgoing(
            channel=message.channel,
            to=message.sender,
            text=rendered.text,
            ref=str(NoticeRef(message.external_id)),
            segments=rendered.segments or 1,
            trace_id=trace.current() or "",
        )
