"""Twilio SMS webhooks: inbound messages and delivery status callbacks.

Both are form POSTs signed with X-Twilio-Signature over the URL Twilio called; behind a proxy the
URL we see differs from the one Twilio signed, so a configured public base URL replaces ours.
Inbound messages are acknowledged at once with empty TwiML; the answer goes out through the
dispatcher, never in the webhook response (Twilio gives up after 15 s; Rasa may be slower)."""

from __future__ import annotations

import logging
import re

from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

from channels.base import InboundMessage, Intake, StatusUpdate
from channels.sms.wire import CHANNEL
from channels.twilio.sender import OPTED_OUT_CODE

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
SID_RE = re.compile(r"^(SM|MM|SMS)[0-9a-fA-F]{32}\Z")
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}\Z")
STATUSES = {"accepted", "queued", "sending", "sent", "delivered", "undelivered", "failed", "read", "canceled"}


class BadRequest(ValueError):
    """A webhook whose fields are missing or malformed (answered with 400)."""


def parse_inbound(params: MultiDictProxy[str]) -> InboundMessage:
    sid, sender, body = params.get("MessageSid"), params.get("From"), params.get("Body")
    if not sid or not SID_RE.match(sid):
        raise BadRequest("MessageSid is missing or malformed")
    if not sender or not E164_RE.match(sender):
        raise BadRequest("From is missing or not an E.164 phone number")
    if body is None:
        raise BadRequest("Body is missing")
    return InboundMessage(channel=CHANNEL, sender=sender, external_id=sid, text=body, metadata={"to": params.get("To")})


def parse_status(params: MultiDictProxy[str]) -> StatusUpdate:
    sid, status = params.get("MessageSid"), (params.get("MessageStatus") or "").lower()
    if not sid or not SID_RE.match(sid):
        raise BadRequest("MessageSid is missing or malformed")
    if status not in STATUSES:
        raise BadRequest("MessageStatus is missing or unknown")
    code = params.get("ErrorCode") or None
    return StatusUpdate(CHANNEL, sid, status, code, opted_out=code == str(OPTED_OUT_CODE))


class TwilioChannel:
    name = CHANNEL

    def __init__(self, auth_token: str, intake: Intake, public_base_url: str | None = None) -> None:
        self.validator = RequestValidator(auth_token)
        self.intake, self.public_base_url = intake, (public_base_url or "").rstrip("/")

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/channels/twilio/sms", self.inbound), web.post("/channels/twilio/status", self.status)]

    async def inbound(self, request: web.Request) -> web.Response:
        params = await self._verified_form(request)
        try:
            message = parse_inbound(params)
        except BadRequest as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        await self.intake.accept(message)  # False for Twilio's retry of a message we have: ack it all the same
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def status(self, request: web.Request) -> web.Response:
        params = await self._verified_form(request)
        try:
            update = parse_status(params)
        except BadRequest as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        await self.intake.status(update)
        return web.Response(status=204)

    async def _verified_form(self, request: web.Request) -> MultiDictProxy[str]:
        if request.content_type != "application/x-www-form-urlencoded":
            raise web.HTTPUnsupportedMediaType(text="expected application/x-www-form-urlencoded")
        try:
            params = await request.post()
        except UnicodeDecodeError:
            raise web.HTTPBadRequest(text="body is not UTF-8") from None
        signature = request.headers.get("X-Twilio-Signature", "")
        url = f"{self.public_base_url}{request.path_qs}" if self.public_base_url else str(request.url)
        if not signature or not self.validator.validate(url, params, signature):
            log.warning("refused a Twilio webhook with a missing or wrong signature from %s", request.remote)
            raise web.HTTPForbidden(text="X-Twilio-Signature is missing or does not match")
        return params  # type: ignore[return-value]  # form fields only: no file uploads in Twilio's webhooks
