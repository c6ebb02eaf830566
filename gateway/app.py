"""The aiohttp application: channels' routes, the shared pipeline, health."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.twilio.handler import TwilioChannel
from channels.webchat.handler import WebChatChannel
from channels.webchat.wire import CHANNEL as WEBCHAT
from channels.webpush.handler import WebPushChannel
from channels.webpush.vapid import load_private_key, public_key_b64
from channels.wechat.handler import WeChatChannel
from common import trace
from gateway.config import Settings
from gateway.db import conversations
from gateway.db.engine import async_engine, session_factory
from gateway.handoff.api import HandoffApi
from gateway.handoff.workorders_api import WorkOrderApi
from gateway.inbound.bridge import CircuitBreaker, RasaBridge
from gateway.inbound.turn import Turns
from gateway.messaging import Messaging
from gateway.outbound.push_subscriptions import SqlPushSubscriptions
from gateway.outbound.queue import OutboundQueue
from gateway.payments import PaymentNotifications, PaymentSweeper, merchant_config
from gateway.scrape import Scrape
from gateway.staff.api import staff_routes
from gateway.state import StateStore, create_state
from gateway.webchat import session_ids
from intents.zh import bot_text
from payments.wechatpay import WeChatPayClient

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a chat message is never bigger; larger bodies get 413
TOO_LARGE = "请求体过大（上限64KB）。"

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
STATE = web.AppKey[StateStore]("state")  # a Protocol: named by subscript, not as a class
BRIDGE = web.AppKey("bridge", RasaBridge)
TURNS = web.AppKey("turns", Turns)
MESSAGING = web.AppKey("messaging", Messaging)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[traced, json_errors])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.router.add_get("/healthz", healthz)
    return app


@web.middleware
async def traced(request: web.Request, handler):
    """Every request starts a trace: a citizen's message carries its id from here (common/trace.py)."""
    with trace.bound(None):
        return await handler(request)


@web.middleware
async def json_errors(request: web.Request, handler):
    """API clients get JSON errors with a reason, not aiohttp's English plain text."""
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        if not request.path.startswith("/api/"):
            raise
        return web.json_response({"error": TOO_LARGE, "code": "too_large"}, status=413, dumps=_dumps)


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class Core:
    """What both the gateway and a `citygw worker` process run on."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    state: StateStore
    bridge: RasaBridge
    turns: Turns
    messaging: Messaging


@contextlib.asynccontextmanager
async def core(settings: Settings) -> AsyncIterator[Core]:
    engine = async_engine(settings.database_url, pool_size=max(20, settings.dispatch_concurrency))
    sessions = session_factory(engine)
    state = create_state(settings.redis_url, settings.queue_prefix)
    bridge = RasaBridge(
        settings.rasa_url,
        timeout_s=settings.rasa_timeout_s,
        retries=settings.rasa_retries,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s),
    )
    turns = Turns(settings, sessions, state, bridge, normalise=bot_text)
    messaging = Messaging.build(settings, sessions, state, turns)
    try:
        yield Core(engine, sessions, state, bridge, turns, messaging)
    finally:
        await messaging.close()
        await bridge.close()
        await state.close()
        await engine.dispose()


async def _resources(app: web.Application):
    settings = app[SETTINGS]
    async with core(settings) as c:

        async def webchat_history(session: str):
            async with c.sessions() as db:
                return await conversations.history(db, WEBCHAT, session, settings.history_limit)

        inbound = c.messaging.inbound
        webchat = WebChatChannel(
            c.state, webchat_history, session_ids(settings, c.sessions), settings.forwarded_proxies
        )
        app.router.add_routes(webchat.routes(inbound))
        handoff = c.messaging.handoff
        assert handoff is not None
        await handoff.prime()
        inbox = HandoffApi(settings, c.sessions, c.state, c.messaging.wires, handoff.delivery)
        app.on_shutdown.append(inbox.end_streams)
        more = [*inbox.endpoints(), *WorkOrderApi(c.messaging.wires, handoff.delivery).endpoints()]
        app.router.add_routes(staff_routes(settings, c.sessions, c.state, more))
        queues: dict[str, OutboundQueue[Any]] = {"outbound": c.messaging.outbox, "inbox": c.messaging.inbox}
        app.router.add_routes(Scrape(settings.metrics_token, c.bridge, queues, c.sessions).routes())
        if (push := webpush_channel(settings, c.sessions)) is not None:
            app.router.add_routes(push.routes())
        if settings.twilio_auth_token:
            app.router.add_routes(
                TwilioChannel(settings.twilio_auth_token, c.messaging.intake, settings.public_base_url).routes()
            )
        if settings.wechat_token:
            app.router.add_routes(
                WeChatChannel(
                    settings.wechat_token, c.messaging.intake, settings.wechat_app_id or "", settings.wechat_aes_key
                ).routes()
            )
        sweeper: PaymentSweeper | None = None
        if (config := merchant_config(settings)) is not None:
            notifications = PaymentNotifications(config, WeChatPayClient(config), c.sessions, c.messaging)
            app.router.add_routes(notifications.routes())
            sweeper = PaymentSweeper(notifications.payments, notifications.herald, settings.payment_sweep_s)
        if settings.dispatch_in_process:
            c.messaging.start_workers()
        app[ENGINE], app[STATE], app[BRIDGE], app[TURNS] = c.engine, c.state, c.bridge, c.turns
        app[MESSAGING] = c.messaging
        sweeping = asyncio.create_task(sweeper.run()) if sweeper is not None else None
        try:
            yield
        finally:
            if sweeper is not None and sweeping is not None:
                sweeper.stop()
                await sweeping


def webpush_channel(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> WebPushChannel | None:
    """The web chat page's subscribe endpoint with the public half of the VAPID key; None when web push is off."""
    if settings.webpush_vapid_private_key and not settings.webpush_vapid_subject:
        log.warning("web push is off: CITYGW_WEBPUSH_VAPID_SUBJECT (a mailto: or https: contact) is not set")
    if not (settings.webpush_enabled and settings.webpush_vapid_private_key):
        return None
    return WebPushChannel(
        SqlPushSubscriptions(sessions),
        public_key_b64(load_private_key(settings.webpush_vapid_private_key)),
        insecure_origins=settings.webpush_insecure_origins,
        push_hosts=settings.webpush_hosts,
    )


async def healthz(request: web.Request) -> web.Response:
    app = request.app

    async def database() -> bool:
        try:
            async with app[ENGINE].connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:  # any failure means "not healthy"; the details go to the log
            log.exception("database health check failed")
            return False

    bridge = app[BRIDGE]
    db_ok, state_ok, rasa_ok = await asyncio.gather(database(), app[STATE].ping(), bridge.healthy())
    breaker = await bridge.probe()  # a half-open breaker is decided now, not by the next citizen
    checks = {
        "database": "ok" if db_ok else "down",
        "state": ("redis" if app[SETTINGS].redis_url else "memory") + (" ok" if state_ok else " down"),
        "rasa": "ok" if rasa_ok else "down",
        "rasa_breaker": breaker,
    }
    # Down (503: take this gateway out of rotation) only when it cannot keep a message: without its
    # database or state. Without Rasa it still takes every message, records it and answers "系统繁忙":
    # degraded, and every other gateway would be the same.
    if not (db_ok and state_ok):
        status, code = "down", 503
    elif rasa_ok and breaker == "closed":
        status, code = "ok", 200
    else:
        status, code = "degraded", 200
    return web.json_response({"status": status, "checks": checks}, status=code)
