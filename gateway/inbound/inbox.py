"""The webhook side of the inbound path: a provider's message is deduped (Seen: the path's one
dedupe, shared with web chat), queued durably on the inbox stream (the outbound queue's implementation,
its own entry type) so the webhook is acknowledged in milliseconds, and taken by a TurnRunner, which
runs Inbound.process and acknowledges the entry only after the replies are queued. An entry whose
worker died is reclaimed after `visibility_s` and run again: the turn answers a recorded message from
the log, so the second run replays the first one's answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from channels.base import InboundMessage, StatusUpdate
from common import trace
from gateway import metrics
from gateway.logs import mask
from gateway.outbound.queue import Delivery, OutboundQueue
from gateway.state import StateStore

if TYPE_CHECKING:
    from gateway.inbound.path import Inbound

log = logging.getLogger(__name__)

StatusSink = Callable[[StatusUpdate], Awaitable[None]]


@dataclass(frozen=True)
class InboxEntry:
    message: InboundMessage
    priority: str = "reply"  # every inbound message is a conversation turn
    attempt: int = 0

    def as_fields(self) -> dict[str, str]:
        m = self.message
        return {
            "channel": m.channel,
            "sender": m.sender,
            "external_id": m.external_id,
            "text": m.text,
            "timestamp": m.timestamp.isoformat(),
            "metadata": json.dumps(m.metadata, ensure_ascii=False),
            "priority": self.priority,
            "attempt": str(self.attempt),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> InboxEntry:
        message = InboundMessage(
            channel=fields["channel"],
            sender=fields["sender"],
            external_id=fields["external_id"],
            text=fields["text"],
            timestamp=datetime.fromisoformat(fields["timestamp"]),
            metadata=json.loads(fields.get("metadata") or "{}"),
        )
        return cls(message, fields.get("priority", "reply"), int(fields.get("attempt", 0)))


class Seen:
    """The one dedupe of the path: a message id claimed when its message arrives."""

    def __init__(self, state: StateStore, ttl_s: int) -> None:
        self.state, self.ttl_s = state, ttl_s

    async def first_time(self, message: InboundMessage) -> bool:
        return await self.state.claim(self._key(message), self.ttl_s)

    async def forget(self, message: InboundMessage) -> None:
        await self.state.release(self._key(message))

    @staticmethod
    def _key(message: InboundMessage) -> str:
        return f"seen:{message.channel}:{message.external_id}"


class Intake:
    """Where webhook channels hand what they received (channels.base.Intake): deduped and queued, so
    the webhook is acknowledged at once (Twilio waits 15 s, WeChat 5 s)."""

    def __init__(self, seen: Seen, inbox: OutboundQueue[InboxEntry], statuses: StatusSink) -> None:
        self.seen, self.inbox, self.statuses = seen, inbox, statuses

    async def accept(self, message: InboundMessage) -> bool:
        """Queued for a turn; False when it was seen before (a provider's retry)."""
        if not await self.seen.first_time(message):
            metrics.INBOUND_DUPLICATES.labels(message.channel).inc()
            log.info(
                "%s message %s seen before: acknowledged, not answered again",
                message.channel,
                mask(message.external_id),
            )
            return False
        traced = replace(message, metadata={**message.metadata, trace.METADATA_KEY: trace.current() or trace.new_id()})
        try:
            await self.inbox.add(InboxEntry(traced))
        except BaseException:
            await self.seen.forget(message)  # not queued: the provider's retry must get through
            raise
        metrics.INBOUND_MESSAGES.labels(message.channel).inc()
        log.info("%s message from %s queued for its turn", message.channel, mask(message.sender))
        return True

    async def status(self, update: StatusUpdate) -> None:
        """A provider's delivery report."""
        await self.statuses(update)


class TurnRunner:
    """Consumes the inbox stream: one turn per entry."""

    def __init__(
        self,
        inbox: OutboundQueue[InboxEntry],
        inbound: Inbound,
        consumer: str,
        concurrency: int = 4,
        visibility_s: float = 60,
    ) -> None:
        self.inbox, self.inbound, self.consumer = inbox, inbound, consumer
        self.concurrency, self.visibility_ms = concurrency, int(visibility_s * 1000)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task] = set()

        def done(task: asyncio.Task) -> None:
            tasks.discard(task)
            slots.release()

        while not self._stopping.is_set():
            try:
                batch = await self.inbox.reclaim(self.consumer, self.visibility_ms, self.concurrency)
                batch += await self.inbox.read(self.consumer, self.concurrency, block_ms=500)
            except Exception:  # Redis restarting: wait and read again, nothing is lost
                log.exception("reading the inbox stream failed")
                await asyncio.sleep(1)
                continue
            for delivery in batch:
                await slots.acquire()
                task = asyncio.create_task(self._one(delivery))
                tasks.add(task)
                task.add_done_callback(done)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, delivery: Delivery[InboxEntry]) -> None:
        message = delivery.message.message
        with trace.bound(message.metadata.get(trace.METADATA_KEY)):
            await self._turn(delivery)

    async def _turn(self, delivery: Delivery[InboxEntry]) -> None:
        message = delivery.message.message
        try:
            await self.inbound.process(message)
        except Exception:
            # Left unacknowledged: another turn runner reclaims it after the visibility timeout.
            log.exception("turn for %s on %s failed; it will be retried", mask(message.sender), message.channel)
            return
        await self.inbox.ack(delivery)

    def stop(self) -> None:
        self._stopping.set()
