"""Web chat: the page, a WebSocket per browser tab, and a REST endpoint for integrations.

A session id names a citizen's web chat; only the server mints one (sessions.py: random, signed with the
server's secret), the browser keeps it in localStorage, and it is the only credential: whoever holds it
can continue that conversation. Made-up or long-idle ids are refused (REST: 401; the page: a fresh
session, and the citizen is told)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from aiohttp import WSMsgType, web

from channels.base import InboundMessage, MessageHandler, Reply, TurnResult
from channels.webchat.sessions import SessionIds, Standing
from channels.webchat.wire import CHANNEL
from common.addresses import Network, client_address, subscriber

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}\Z")  # \Z: "$" also matches before a final "\n"
MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}\Z")
BAD_FRAME = "消息格式不正确，请刷新页面后重试。"
BAD_REQUEST = {
    "json": "请求体必须是UTF-8编码的JSON对象。",
    "session": "session必须是8到64位的字母、数字、下划线或连字符。",
    "text": "text必须是字符串。",
    "id": "id必须是1到64位的字母、数字或 _.:- 字符。",
}
REFUSAL_STATUS = {"empty": 400, "too_long": 413, "rate_limited": 429, "busy": 429}
SESSION_REFUSED = {
    Standing.UNKNOWN: "该会话不是本服务签发的，请先通过 POST /api/webchat/sessions 获取新会话。",
    Standing.EXPIRED: "该会话已超过30天未使用，已失效。请通过 POST /api/webchat/sessions 获取新会话。",
}
# Told on the page when the session it kept was refused and a fresh one started in its place.
FRESH_SESSION = {
    Standing.UNKNOWN: "未能识别您之前的会话，已为您开始新的对话。",
    Standing.EXPIRED: "您之前的会话已超过30天未使用，已为您开始新的对话。",
}

History = Callable[[str], Awaitable[list[dict[str, Any]]]]


class PubSub(Protocol):
    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Any]: ...


# The page runs only its own scripts and styles, talks only to its own origin (REST and WebSocket),
# and cannot be framed by another site (clickjacking a citizen's verified session).
PAGE_SECURITY = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class WebChatChannel:
    name = CHANNEL

    def __init__(self, pubsub: PubSub, history: History, sessions: SessionIds, proxies: Sequence[Network] = ()) -> None:
        self.pubsub, self.history, self.sessions = pubsub, history, sessions
        self.proxies = tuple(proxies)  # reverse proxies whose X-Forwarded-For names the client

    def routes(self, handler: MessageHandler) -> list[web.AbstractRouteDef]:
        self.handler = handler
        return [
            web.get("/", self.page),
            web.get("/sw.js", self.service_worker),
            web.static("/static/webchat", STATIC),
            web.get("/ws/webchat", self.websocket),
            web.post("/api/webchat/messages", self.rest_message),
            web.post("/api/webchat/sessions", self.rest_session),
        ]

    async def deliver(self, address: str, replies: list[Reply], in_reply_to: str | None) -> None:
        for reply in replies:
            await self.pubsub.publish(topic(address), {"type": "reply", "in_reply_to": in_reply_to, **reply.as_dict()})

    async def page(self, _request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache", **PAGE_SECURITY})

    async def service_worker(self, _request: web.Request) -> web.FileResponse:
        # At the root so that its scope covers the page; no-cache so that browsers see a new version.
        headers = {"Cache-Control": "no-cache", "Content-Type": "text/javascript; charset=utf-8"}
        return web.FileResponse(STATIC / "sw.js", headers=headers)

    def _client(self, request: web.Request) -> dict[str, str]:
        """The turn's metadata naming the client's network (pseudonymous), for the per-address limit."""
        return {"client_address": self.sessions.client_key(subscriber(client_address(request, self.proxies)))}

    # --- REST -------------------------------------------------------------------------------

    async def rest_session(self, _request: web.Request) -> web.Response:
        """A new session for an integration (the page gets its own over the WebSocket)."""
        return web.json_response({"session": self.sessions.mint()}, status=201)

    async def rest_message(self, request: web.Request) -> web.Response:
        try:
            body = _loads((await request.read()).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _error(400, "json", BAD_REQUEST["json"])
        if not isinstance(body, dict):
            return _error(400, "json", BAD_REQUEST["json"])
        session, text, message_id = body.get("session"), body.get("text"), body.get("id") or uuid.uuid4().hex
        if not isinstance(session, str) or not SESSION_RE.match(session):
            return _error(400, "session", BAD_REQUEST["session"])
        if not _valid_text(text):
            return _error(400, "text", BAD_REQUEST["text"])
        if not isinstance(message_id, str) or not MESSAGE_ID_RE.match(message_id):
            return _error(400, "id", BAD_REQUEST["id"])
        standing = await self.sessions.standing(session)
        if standing is not Standing.VALID:
            return _error(401, f"session_{standing.value}", SESSION_REFUSED[standing])
        result = await self.handler.handle(_inbound(session, message_id, text, self._client(request)))
        if result.refusal:
            return _error(REFUSAL_STATUS.get(result.refusal_code or "", 400), result.refusal_code, result.refusal)
        return web.json_response(
            {"session": session, "replies": [r.as_dict() for r in result.replies], "duplicate": result.duplicate},
            dumps=_dumps,
        )

    # --- WebSocket --------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=25, max_msg_size=16 * 1024)
        await ws.prepare(request)
        session = request.query.get("session", "")
        standing = await self.sessions.standing(session) if SESSION_RE.match(session) else None
        hello: dict[str, Any] = {"type": "session"}
        if standing is not Standing.VALID:
            if standing is not None:  # a well-formed id we did not issue, or one idle too long: say so
                hello["notice"] = FRESH_SESSION[standing]
            session = self.sessions.mint()  # none, malformed, refused: start a fresh conversation
        client = self._client(request)
        socket_id = uuid.uuid4().hex
        # Subscribe before reading the history, so nothing another tab sends falls in between.
        async with self.pubsub.subscribe(topic(session)) as subscription:
            hello.update(session=session, history=await self.history(session))
            await ws.send_json(hello, dumps=_dumps)
            forward = asyncio.create_task(_forward(subscription, ws, socket_id))
            try:
                async for frame in ws:
                    if frame.type == WSMsgType.TEXT:
                        await self._on_frame(ws, session, socket_id, frame.data, client)
                    elif frame.type == WSMsgType.BINARY:
                        await _send(ws, {"type": "error", "error": BAD_FRAME, "in_reply_to": None})
            finally:
                forward.cancel()
        return ws

    async def _on_frame(
        self, ws: web.WebSocketResponse, session: str, socket_id: str, data: str, client: dict[str, str]
    ) -> None:
        try:
            frame = _loads(data)
        except ValueError:
            frame = None
        ok = (
            isinstance(frame, dict)
            and frame.get("type") == "message"
            and _valid_text(frame.get("text"))
            and isinstance(frame.get("id"), str)
            and MESSAGE_ID_RE.match(frame["id"])
        )
        if not ok:
            await _send(ws, {"type": "error", "error": BAD_FRAME, "in_reply_to": None})
            return
        message_id = frame["id"]
        display = frame.get("display") if isinstance(frame.get("display"), str) else None
        await _send(ws, {"type": "typing"})
        result = await self.handler.handle(_inbound(session, message_id, frame["text"], client))
        if result.refusal:
            await _send(ws, {"type": "error", "error": result.refusal, "in_reply_to": message_id})
        elif not result.duplicate:
            # Other tabs of this session see the citizen's message and the answers too.
            await self.pubsub.publish(
                topic(session), {"type": "echo", "text": display or frame["text"], "origin": socket_id}
            )
        for reply in result.replies:
            frame_out = {"type": "reply", "in_reply_to": message_id, **reply.as_dict()}
            await _send(ws, frame_out)
            if not result.duplicate:
                await self.pubsub.publish(topic(session), {**frame_out, "in_reply_to": None, "origin": socket_id})
        await _send(ws, {"type": "done", "in_reply_to": message_id})


def topic(session: str) -> str:
    return f"{CHANNEL}:{session}"


def _inbound(session: str, message_id: str, text: str, client: dict[str, str] | None = None) -> InboundMessage:
    # Scoped by session: one browser must not fetch another session's replies by guessing an id.
    return InboundMessage(
        channel=CHANNEL, sender=session, external_id=f"{session}:{message_id}", text=text, metadata=client or {}
    )


async def _forward(subscription: Any, ws: web.WebSocketResponse, socket_id: str) -> None:
    while not ws.closed:
        # One published dict is shared by every local subscriber of the topic: never mutate it.
        message = dict(await subscription.get())
        if message.pop("origin", None) != socket_id:
            await _send(ws, message)


async def _send(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    if not ws.closed:
        with contextlib.suppress(ConnectionResetError):
            await ws.send_json(frame, dumps=_dumps)


def _loads(data: str) -> Any:
    """json.loads, with deep nesting (RecursionError) reported as the ValueError it is."""
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def _valid_text(text: Any) -> TypeGuard[str]:
    """A string that can be stored and sent: no lone surrogates (JSON "\\ud800" escapes) and no NUL,
    which PostgreSQL text columns refuse."""
    if not isinstance(text, str) or "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _error(status: int, code: str | None, message: str) -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status, dumps=_dumps)


__all__ = ["CHANNEL", "SessionIds", "TurnResult", "WebChatChannel"]
