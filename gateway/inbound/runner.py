"""Consumes the inbox stream: one turn per entry, acknowledged only after its replies are queued. An
entry whose worker died is reclaimed after `visibility_s` and run again (the turn answers a recorded
message from the log, so the second run replays the first one's answer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.inbound.path import Inbound
from gateway.logs import mask
from gateway.outbound.queue import Delivery, OutboundQueue

log = logging.getLogger(__name__)


class TurnRunner:
    def __init__(
        self, inbox: OutboundQueue, inbound: Inbound, consumer: str, concurrency: int = 4, visibility_s: float = 60
    ) -> None:
        self.inbox, self.inbound, self.consumer = inbox, inbound, consumer
        self.concurrency, self.visibility_ms = concurrency, int(visibility_s * 1000)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task] = set()
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
                task.add_done_callback(lambda t: (tasks.discard(t), slots.release()))
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, delivery: Delivery) -> None:
        message = delivery.message.message  # type: ignore[attr-defined]  # an InboxEntry
        try:
            await self.inbound.process(message)
        except Exception:
            # Left unacknowledged: another turn runner reclaims it after the visibility timeout.
            log.exception("turn for %s on %s failed; it will be retried", mask(message.sender), message.channel)
            return
        await self.inbox.ack(delivery)

    def stop(self) -> None:
        self._stopping.set()
