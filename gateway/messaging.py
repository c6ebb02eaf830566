"""Wiring for the webhook channels and the outbound path, shared by the gateway (which runs the
workers in-process in the embedded default) and `citygw worker` (more workers, elsewhere).

    webhook → Inbound.accept (dedupe, inbox stream) → TurnRunner → Inbound.process (responders, turn,
    render, record) → outbound stream → Dispatcher → Sender (Twilio, WeChat, web push) → provider →
    status callback → Ledger; web chat → Inbound.handle → the same steps, answered in the request
    staff API → broadcast service → BroadcastRunner (fan-out) → outbound stream → Dispatcher → …
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Sender
from channels.sms.wire import CHANNEL as SMS
from channels.twilio.sender import TwilioSender
from channels.webpush.sender import WebPushSender
from channels.webpush.wire import CHANNEL as WEBPUSH
from channels.wechat.api import WeChatApi, WeChatSender
from channels.wechat.wire import CHANNEL as WECHAT
from gateway.broadcast.runner import BroadcastRunner
from gateway.config import Settings
from gateway.handoff.delivery import Delivery
from gateway.handoff.responders import CitizenSide
from gateway.inbound.binding import Binding
from gateway.inbound.inbox import InboxEntry, Intake, Seen, TurnRunner
from gateway.inbound.path import Inbound
from gateway.inbound.responders import MenuMemory, responders
from gateway.inbound.schools import Schools
from gateway.inbound.turn import Turns
from gateway.outbound.dispatcher import Dispatcher, default_consumer
from gateway.outbound.ledger import Ledger
from gateway.outbound.push_subscriptions import SqlPushSubscriptions
from gateway.outbound.queue import MemoryQueue, OutboundQueue, RedisStreamQueue
from gateway.outbound.ratelimit import RateLimiter, create_limiter
from gateway.state import StateStore
from gateway.wires import Wires, wires


def public_url(settings: Settings) -> str:
    return (settings.public_base_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def senders(
    settings: Settings, state: StateStore, sessions: async_sessionmaker[AsyncSession] | None = None
) -> dict[str, Sender]:
    """A sender per configured provider; an unconfigured channel's messages fail as "no sender".
    Web push needs the database (sessions): its messages name a subscription kept there."""
    out: list[Sender] = []
    if settings.twilio_account_sid and settings.twilio_auth_token:
        out.append(
            TwilioSender(
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                settings.twilio_from,
                api_base=settings.twilio_api_base,
                status_callback=f"{public_url(settings)}/channels/twilio/status",
            )
        )
    if settings.wechat_app_id and settings.wechat_app_secret:
        api = WeChatApi(settings.wechat_app_id, settings.wechat_app_secret, state, settings.wechat_api_base)
        out.append(WeChatSender(api))
    vapid_key, subject = settings.webpush_vapid_private_key, settings.webpush_vapid_subject
    if vapid_key and subject and sessions is not None:
        out.append(WebPushSender(vapid_key, subject, SqlPushSubscriptions(sessions), ttl_s=settings.webpush_ttl_s))
    return {sender.channel: sender for sender in out}


@dataclass
class Messaging:
    settings: Settings
    state: StateStore
    wires: Wires
    outbox: OutboundQueue
    inbox: OutboundQueue[InboxEntry]
    deliveries: Ledger
    inbound: Inbound
    intake: Intake
    senders: dict[str, Sender]
    limiter: RateLimiter
    sessions: async_sessionmaker[AsyncSession] | None = None
    handoff: CitizenSide | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)
    _runners: list[Dispatcher | TurnRunner | BroadcastRunner] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        turns: Turns,
    ) -> Messaging:
        outbox, inbox = (
            (
                RedisStreamQueue(settings.redis_url, prefix=f"{settings.queue_prefix}:out"),
                RedisStreamQueue(
                    settings.redis_url, prefix=f"{settings.queue_prefix}:in", group="turns", entry_type=InboxEntry
                ),
            )
            if settings.redis_url
            else (MemoryQueue(), MemoryQueue[InboxEntry]())
        )
        channels = wires(settings)
        deliveries = Ledger(settings, sessions, channels)
        binding = Binding(settings, sessions, state, outbox.add, channels.phone)
        schools = Schools(settings, sessions, state, outbox.add, channels)
        memory, seen = MenuMemory(state), Seen(state, settings.dedupe_ttl_s)
        delivery = Delivery(channels, outbox.add, state)
        handoff = CitizenSide(settings, sessions, state, delivery)
        turns.after_bot = handoff.after_bot
        steps = responders(binding, schools, memory, deliveries.set_sms_opt_out, handoff.responders())
        inbound = Inbound(channels, seen, turns, steps, memory, outbox.add)
        intake = Intake(seen, inbox, deliveries.status)
        return cls(
            settings,
            state,
            channels,
            outbox,
            inbox,
            deliveries,
            inbound,
            intake,
            senders(settings, state, sessions),
            create_limiter(settings.redis_url),
            sessions,
            handoff,
        )

    def dispatcher(self, consumer: str | None = None) -> Dispatcher:
        s = self.settings
        limits = {
            SMS: (s.sms_rate or None, s.sms_rate_unit),
            WECHAT: (s.wechat_rate or None, "messages"),
            WEBPUSH: (s.webpush_rate or None, "messages"),
        }
        return Dispatcher(
            self.outbox,
            self.senders,
            self.deliveries,
            self.limiter,
            limits,
            consumer=consumer,
            concurrency=s.dispatch_concurrency,
            max_attempts=s.dispatch_max_attempts,
            visibility_ms=int(s.dispatch_visibility_s * 1000),
        )

    def turn_runner(self, consumer: str | None = None) -> TurnRunner:
        return TurnRunner(self.inbox, self.inbound, consumer or default_consumer())

    def broadcast_runner(self) -> BroadcastRunner:
        if self.sessions is None:
            raise RuntimeError("broadcasts need the database: build Messaging with sessions")
        # without Redis the queue lives in this process: a restart must re-enqueue what it held
        durable = isinstance(self.outbox, RedisStreamQueue)
        return BroadcastRunner(self.settings, self.sessions, self.state, self.outbox, durable_queue=durable)

    def start_workers(self, dispatchers: int = 1, turn_runners: int = 1, broadcast_runners: int = 1) -> None:
        for _ in range(dispatchers):
            self._start(self.dispatcher())
        for _ in range(turn_runners):
            self._start(self.turn_runner())
        for _ in range(broadcast_runners if self.sessions is not None else 0):
            self._start(self.broadcast_runner())

    def _start(self, runner: Dispatcher | TurnRunner | BroadcastRunner) -> None:
        self._runners.append(runner)
        self.tasks.append(asyncio.create_task(runner.run()))

    async def close(self) -> None:
        for runner in self._runners:
            runner.stop()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for sender in self.senders.values():
            await sender.close()
        await self.limiter.close()
        await self.outbox.close()
        await self.inbox.close()
