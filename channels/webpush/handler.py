"""The gateway's side of subscribing, for the web chat page: the application server key the browser
subscribes with, and the endpoint that ties the browser's subscription to its web chat session.

    GET  /api/webpush/key            → {"public_key": "<base64url P-256 point>"}
    POST /api/webpush/subscriptions  {"session": "<web chat session>", "subscription": <toJSON()>}
         → 201 {"subscribed": true} | 400 {"error", "code"} | 404 unknown session

The web chat session is the only credential a citizen has on the page (see channels/webchat), so it
is what says whose subscription this is."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from aiohttp import web

from channels.webchat.handler import BAD_REQUEST, SESSION_RE
from channels.webpush.subscription import PushSubscription, SubscriptionError, parse_subscription

log = logging.getLogger(__name__)

UNKNOWN_SESSION = "没有找到这个对话，请先向助手发送一条消息，再开启通知。"


class Registrar(Protocol):
    async def subscribe(self, session: str, subscription: PushSubscription) -> bool:
        """Keep the subscription for the citizen of this web chat session; False when no conversation
        has that session."""


class WebPushChannel:
    name = "webpush"

    def __init__(
        self,
        registrar: Registrar,
        public_key: str,
        *,
        insecure_origins: tuple[str, ...] = (),
        push_hosts: tuple[str, ...] | None = None,
    ) -> None:
        self.registrar, self.public_key = registrar, public_key
        self.insecure_origins, self.push_hosts = insecure_origins, push_hosts

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/webpush/key", self.key),
            web.post("/api/webpush/subscriptions", self.subscribe),
        ]

    async def key(self, _request: web.Request) -> web.Response:
        return web.json_response({"public_key": self.public_key})

    async def subscribe(self, request: web.Request) -> web.Response:
        try:
            body = json.loads((await request.read()).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return _error(400, "json", BAD_REQUEST["json"])
        if not isinstance(body, dict):
            return _error(400, "json", BAD_REQUEST["json"])
        session = body.get("session")
        if not isinstance(session, str) or not SESSION_RE.match(session):
            return _error(400, "session", BAD_REQUEST["session"])
        try:
            subscription = parse_subscription(
                body.get("subscription"), insecure_origins=self.insecure_origins, push_hosts=self.push_hosts
            )
        except SubscriptionError as exc:
            return _error(400, exc.code, exc.reason)
        if not await self.registrar.subscribe(session, subscription):
            return _error(404, "unknown_session", UNKNOWN_SESSION)
        log.info("a web chat session subscribed to web push at %s", subscription.host)
        return web.json_response({"subscribed": True}, status=201)


def _error(status: int, code: str, message: str) -> web.Response:
    body: dict[str, Any] = {"error": message, "code": code}
    return web.json_response(body, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))
