"""Inbound messages from webhook channels: deduplicated by the provider's id, queued durably, and
answered by turn workers, so a webhook is acknowledged in milliseconds and a crash loses nothing.

The inbound stream reuses the outbound queue's implementation (Redis Streams with a consumer group,
or its in-memory twin) under its own prefix, so both share one set of durability and reclaim
semantics and one contract suite. An inbound message travels in an Outgoing's fields:
`to` is the sender, `ref` the provider's message id, `template` the metadata."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from channels.base import InboundMessage, Outgoing, StatusUpdate
from gateway.delivery import SqlDeliveryLog
from gateway.logs import mask
from gateway.outbound.queue import Delivery, OutboundQueue
from gateway.state import StateStore
from gateway.turns import TurnWorker

log = logging.getLogger(__name__)


def to_entry(message: InboundMessage) -> Outgoing:
    metadata = {**message.metadata, "timestamp": message.timestamp.isoformat()}
    return Outgoing(
        channel=message.channel, to=message.sender, text=message.text, ref=message.external_id, template=metadata
    )


def from_entry(entry: Outgoing) -> InboundMessage:
    metadata = dict(entry.template or {})
    timestamp = datetime.fromisoformat(metadata.pop("timestamp"))
    return InboundMessage(entry.channel, entry.to, entry.ref, entry.text, timestamp, metadata)


class Intake:
    """The webhook side (channels.base.Intake)."""

    def __init__(self, state: StateStore, queue: OutboundQueue, deliveries: SqlDeliveryLog, ttl_s: int) -> None:
        self.state, self.queue, self.deliveries, self.ttl_s = state, queue, deliveries, ttl_s

    async def accept(self, message: InboundMessage) -> bool:
        key = f"intake:{message.channel}:{message.external_id}"
        if not await self.state.claim(key, self.ttl_s):
            return False
        try:
            await self.queue.add(to_entry(message))
        except BaseException:
            await self.state.release(key)  # not queued: the provider's retry must get through
            raise
        return True

    async def status(self, update: StatusUpdate) -> None:
        await self.deliveries.status(update)


class TurnRunner:
    """Consumes the inbound stream: one turn per entry, acknowledged only after its replies are queued.
    An entry whose worker died is reclaimed after `visibility_s` and run again (the pipeline's
    dedupe makes the second run replay the first one's answer)."""

    def __init__(
        self, queue: OutboundQueue, worker: TurnWorker, consumer: str, concurrency: int = 4, visibility_s: float = 60
    ) -> None:
        self.queue, self.worker, self.consumer = queue, worker, consumer
        self.concurrency, self.visibility_ms = concurrency, int(visibility_s * 1000)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task] = set()
        while not self._stopping.is_set():
            try:
                batch = await self.queue.reclaim(self.consumer, self.visibility_ms, self.concurrency)
                batch += await self.queue.read(self.consumer, self.concurrency, block_ms=500)
            except Exception:  # Redis restarting: wait and read again, nothing is lost
                log.exception("reading the inbound stream failed")
                await asyncio.sleep(1)
                continue
            for delivery in batch:
                await slots.acquire()
                task = asyncio.create_task(self._one(delivery))
                tasks.add(task)
                task.add_done_callback(lambda t: (tasks.discard(t), slots.release()))
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, delivery: Delivery) -> None:
        message = from_entry(delivery.message)
        try:
            await self.worker.process(message)
        except Exception:
            # Left unacknowledged: another turn runner reclaims it after the visibility timeout.
            log.exception("turn for %s on %s failed; it will be retried", mask(message.sender), message.channel)
            return
        await self.queue.ack(delivery)

    def stop(self) -> None:
        self._stopping.set()
