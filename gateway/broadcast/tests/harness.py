"""The real outbound path around a broadcast, for end-to-end tests: the local Twilio and WeChat servers,
the real senders, the dispatcher, the SQL delivery log (with Twilio's signed status callbacks coming
back through the real webhook handler) and a BroadcastRunner. Memory queue and state on SQLite, Redis
on PostgreSQL, as the two deployments run."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from channels.base import Sender, StatusUpdate
from channels.twilio.handler import TwilioChannel
from channels.twilio.sender import TwilioSender
from channels.wechat.api import WeChatApi, WeChatSender
from gateway.broadcast import service
from gateway.broadcast.runner import BroadcastRunner
from gateway.config import Settings
from gateway.outbound.dispatcher import Dispatcher
from gateway.outbound.ledger import Ledger
from gateway.outbound.queue import MemoryQueue, OutboundQueue, RedisStreamQueue
from gateway.outbound.tests import workers
from gateway.state import MemoryState, StateStore
from gateway.state.redis import RedisState
from gateway.wires import wires
from providers.twilio_api import LocalTwilio
from providers.wechat_api import LocalWeChat
from tests.stack import REDIS_URL

from .conftest import World

SID, TOKEN = "AC" + "0" * 31 + "7", "broadcast-test-token"
APP_ID, SECRET = "wx00000000bcast001", "broadcast-test-secret"


class StatusIntake:
    """What the Twilio webhook hands status callbacks to: here, straight to the delivery log."""

    def __init__(self, deliveries: Ledger) -> None:
        self.deliveries = deliveries

    async def accept(self, message: Any) -> bool:
        return True

    async def status(self, update: StatusUpdate) -> None:
        await self.deliveries.status(update)


@dataclass
class Line:
    world: World
    settings: Settings
    twilio: LocalTwilio
    wechat: LocalWeChat
    queue: OutboundQueue
    state: StateStore
    deliveries: Ledger
    runner: BroadcastRunner

    def dispatcher(self, senders: dict[str, Sender] | None = None, **options: Any) -> Dispatcher:
        """Twilio and WeChat senders pointed at the local servers, and any others given (web push)."""
        sms = TwilioSender(
            SID,
            TOKEN,
            "+8610690000123",
            api_base=self.twilio.url,
            status_callback=f"{self.callback_url}/channels/twilio/status",
        )
        wechat = WeChatSender(WeChatApi(APP_ID, SECRET, self.state, self.wechat.url))
        settings = dict(workers.QUICK, concurrency=8, max_attempts=3, visibility_ms=5000)
        settings.update(options)
        return Dispatcher(self.queue, {"sms": sms, "wechat": wechat, **(senders or {})}, self.deliveries, **settings)

    callback_url: str = ""
    queue_prefix: str = ""

    def sms_count(self) -> Counter[str]:
        return Counter(m.to for m in self.twilio.messages)

    def wechat_count(self) -> Counter[str]:
        return Counter(m.touser for m in self.wechat.messages)

    async def until_progress(self, broadcast_id: int, key: str, value: int, timeout: float = 10.0) -> dict[str, int]:
        """Wait for a progress count (status callbacks arrive after the broadcast completes)."""
        deadline = time.monotonic() + timeout
        while True:
            async with self.world.sessions() as db:
                progress = await service.progress(db, broadcast_id)
            if progress[key] == value or time.monotonic() > deadline:
                return progress
            await asyncio.sleep(0.05)

    async def drained(self, timeout: float = 10.0) -> None:
        """Wait until the queue holds nothing (a duplicate left in it could still be sent)."""
        deadline = time.monotonic() + timeout
        while any(n for counts in (await self.queue.depth()).values() for n in counts.values()):
            assert time.monotonic() < deadline, f"queue not drained: {await self.queue.depth()}"
            await asyncio.sleep(0.05)

    async def until(self, broadcast_id: int, status: str = "completed", timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            async with self.world.sessions() as db:
                broadcast = await service.get(db, broadcast_id)
            if broadcast.status == status:
                return
            assert time.monotonic() < deadline, f"broadcast {broadcast_id} is {broadcast.status}, not {status}"
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def line(world: World, redis: bool | None = None, **settings: Any) -> AsyncIterator[Line]:
    """Redis queue and state with PostgreSQL (or when asked), in-process ones with SQLite."""
    settings = world.settings(**settings)
    redis = world.kind == "postgres" if redis is None else redis
    prefix = f"bc-test:{uuid.uuid4().hex[:8]}"
    queue: OutboundQueue = RedisStreamQueue(REDIS_URL, prefix=prefix) if redis else MemoryQueue()
    state: StateStore = RedisState(REDIS_URL) if redis else MemoryState()
    deliveries = Ledger(settings, world.sessions, wires(settings))
    runner = BroadcastRunner(settings, world.sessions, state, queue, durable_queue=redis, poll_s=0.2, idle_s=0.2)
    app = web.Application()
    app.router.add_routes(TwilioChannel(TOKEN, StatusIntake(deliveries)).routes())
    callbacks = web.AppRunner(app, access_log=None)
    await callbacks.setup()
    site = web.TCPSite(callbacks, "127.0.0.1", 0)
    await site.start()
    try:
        async with LocalTwilio(SID, TOKEN) as twilio, LocalWeChat(APP_ID, SECRET) as wechat:
            pipe = Line(world, settings, twilio, wechat, queue, state, deliveries, runner)
            pipe.queue_prefix = prefix
            pipe.callback_url = f"http://127.0.0.1:{callbacks.addresses[0][1]}"
            yield pipe
    finally:
        await callbacks.cleanup()  # after the Twilio server: its last callbacks still find us
        await queue.close()
        await state.close()
        if redis:
            client = aioredis.from_url(REDIS_URL, decode_responses=True)
            keys = [k async for k in client.scan_iter(match=f"{{{prefix}}}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    await workers.until(condition, timeout)


def running(*parts: Any) -> contextlib.AbstractAsyncContextManager[None]:
    """The runner and dispatchers for the block: up to 15 s to stop, and a worker's own error is left
    to what the test then finds in the database."""
    return workers.running(*parts, timeout=15, return_exceptions=True)
