"""WeChat Official Account callbacks: GET verification and POSTed messages and events.

Every POST is answered "success" at once (WeChat retries after 5 s, three times) and the answer goes
out through the customer-service API via the dispatcher. In safe mode the body is AES-encrypted and
signed with msg_signature; in plain mode only the query is signed. Either way the timestamp must be
recent, so a captured callback cannot be replayed later."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web

from channels.base import InboundMessage, Intake
from channels.wechat.crypto import WeChatCrypto, WeChatCryptoError, check_signature, check_timestamp
from channels.wechat.parse import BadMessage, WeChatMessage, parse_envelope, parse_message
from channels.wechat.wire import CHANNEL

log = logging.getLogger(__name__)

SUCCESS = "success"


def inbound_message(message: WeChatMessage) -> InboundMessage:
    """Text as the citizen typed it; events carry their kind and key in metadata, with no text."""
    metadata: dict[str, str] = {"msg_type": message.msg_type, "account": message.to_user}
    if message.event:
        metadata["event"] = message.event
    if message.event_key:
        metadata["event_key"] = message.event_key
    text = message.content if message.msg_type == "text" and message.content is not None else ""
    return InboundMessage(
        channel=CHANNEL,
        sender=message.from_user,
        external_id=message.dedupe_key,
        text=text,
        timestamp=message.created_at,
        metadata=metadata,
    )


class WeChatChannel:
    name = CHANNEL

    def __init__(
        self,
        token: str,
        intake: Intake,
        app_id: str = "",
        encoding_aes_key: str | None = None,
        clock: Callable[[], float] = time.time,
        window_s: float = 300,
    ) -> None:
        self.token, self.intake, self.clock, self.window_s = token, intake, clock, window_s
        # Safe mode when a key is configured: then plain-text POSTs are refused, as WeChat sends none.
        self.crypto = WeChatCrypto(token, encoding_aes_key, app_id) if encoding_aes_key else None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/channels/wechat", self.verify), web.post("/channels/wechat", self.receive)]

    async def verify(self, request: web.Request) -> web.Response:
        """WeChat's server check when the callback URL is saved in the admin console: echo echostr."""
        q = request.query
        self._check_query_signature(request)
        echostr = q.get("echostr")
        if not echostr:
            raise web.HTTPBadRequest(text="echostr is missing")
        return web.Response(text=echostr)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()  # aiohttp refuses bodies over the app's client_max_size with 413
        try:
            xml = self._open(request, body)
            message = parse_message(xml)
        except BadMessage as exc:
            raise web.HTTPBadRequest(text=exc.reason) from None
        except WeChatCryptoError as exc:
            raise web.HTTPBadRequest(text=exc.reason) from None
        await self.intake.accept(inbound_message(message))  # a retry is acknowledged like the first
        return web.Response(text=SUCCESS)

    def _open(self, request: web.Request, body: bytes) -> str | bytes:
        """The message XML: the body itself in plain mode, the decrypted <Encrypt> in safe mode."""
        q = request.query
        self._check_query_signature(request)
        if self.crypto is None:
            if q.get("encrypt_type", "raw") != "raw":
                raise web.HTTPBadRequest(text="safe mode is not configured (no EncodingAESKey)")
            return body
        if q.get("encrypt_type") != "aes":
            raise web.HTTPBadRequest(text="this account is in safe mode: encrypt_type=aes expected")
        envelope = parse_envelope(body)
        try:
            self.crypto.verify_envelope(
                q.get("timestamp", ""), q.get("nonce", ""), q.get("msg_signature", ""), envelope.encrypt, self.clock()
            )
        except WeChatCryptoError as exc:
            log.warning("refused a WeChat callback from %s: %s", request.remote, exc.reason)
            raise web.HTTPForbidden(text=exc.reason) from None
        return self.crypto.decrypt(envelope.encrypt)

    def _check_query_signature(self, request: web.Request) -> None:
        q = request.query
        timestamp, nonce, signature = q.get("timestamp", ""), q.get("nonce", ""), q.get("signature", "")
        if not (signature and check_signature(self.token, timestamp, nonce, signature)):
            log.warning("refused a WeChat callback with a missing or wrong signature from %s", request.remote)
            raise web.HTTPForbidden(text="signature is missing or does not match")
        try:
            check_timestamp(timestamp, self.clock(), self.window_s)
        except WeChatCryptoError as exc:
            raise web.HTTPForbidden(text=exc.reason) from None
