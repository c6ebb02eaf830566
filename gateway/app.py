"""The aiohttp application: channels' routes, the shared pipeline, health."""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.webchat.handler import WebChatChannel
from gateway import conversations
from gateway.bridge import CircuitBreaker, RasaBridge
from gateway.config import Settings
from gateway.db.engine import async_engine, session_factory
from gateway.pipeline import MessagePipeline
from gateway.state import create_state
from intents.zh import normalize_text

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a chat message is never bigger; larger bodies get 413
TOO_LARGE = "请求体过大（上限64KB）。"

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
STATE = web.AppKey("state", object)
BRIDGE = web.AppKey("bridge", RasaBridge)
PIPELINE = web.AppKey("pipeline", MessagePipeline)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.router.add_get("/healthz", healthz)
    return app


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


async def _resources(app: web.Application):
    settings = app[SETTINGS]
    engine = async_engine(settings.database_url)
    sessions = session_factory(engine)
    state = create_state(settings.redis_url)
    bridge = RasaBridge(
        settings.rasa_url,
        timeout_s=settings.rasa_timeout_s,
        retries=settings.rasa_retries,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s),
    )
    pipeline = MessagePipeline(settings, sessions, state, bridge, normalise=normalize_text)

    async def webchat_history(session: str):
        async with sessions() as db:
            return await conversations.history(db, "webchat", session, settings.history_limit)

    webchat = WebChatChannel(state, webchat_history)
    app.router.add_routes(webchat.routes(pipeline))
    app[ENGINE], app[STATE], app[BRIDGE], app[PIPELINE] = engine, state, bridge, pipeline
    yield
    await bridge.close()
    await state.close()
    await engine.dispose()


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
    checks = {
        "database": "ok" if db_ok else "down",
        "state": ("redis" if app[SETTINGS].redis_url else "memory") + (" ok" if state_ok else " down"),
        "rasa": "ok" if rasa_ok else "down",
        "rasa_breaker": bridge.breaker.state,
    }
    # An open breaker means citizens are getting the busy reply, whatever /status says.
    healthy = db_ok and state_ok and rasa_ok and bridge.breaker.state == "closed"
    return web.json_response(
        {"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503
    )
