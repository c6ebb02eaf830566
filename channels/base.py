"""The small contract every channel implements, and the shapes that cross it.

A channel knows its provider's wire format and nothing about the bot: it verifies and parses
inbound requests into InboundMessage, and renders and delivers the bot's replies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web


@dataclass(frozen=True)
class InboundMessage:
    channel: str
    sender: str  # the channel's address for the citizen: web chat session, phone number, openid
    external_id: str  # the channel's id for this message: the dedupe key
    text: str
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reply:
    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "buttons": self.buttons}


@dataclass(frozen=True)
class Rendered:
    """A reply as its channel will carry it (e.g. one SMS with a numbered menu and its segment count)."""

    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    segments: int | None = None


@dataclass(frozen=True)
class OutboundRecord:
    """An outbound message as recorded in the message log; `queued` ones still need the dispatcher."""

    message_id: int
    text: str
    segments: int | None
    status: str


@dataclass
class TurnResult:
    """What the pipeline did with one inbound message."""

    replies: list[Reply]
    conversation_id: str | None = None
    duplicate: bool = False
    refusal: str | None = None  # a Chinese sentence for the citizen when the message was refused
    refusal_code: str | None = None  # machine-readable: empty | too_long | rate_limited
    outbound: list[OutboundRecord] = field(default_factory=list)


class MessageHandler(Protocol):
    """What a channel hands inbound messages to (the gateway's pipeline)."""

    async def handle(self, message: InboundMessage) -> TurnResult: ...


class Intake(Protocol):
    """Where webhook channels hand what they received: the gateway dedupes and queues it, so the
    webhook can be acknowledged at once (Twilio waits 15 s, WeChat 5 s)."""

    async def accept(self, message: InboundMessage) -> bool:
        """Queue message for a bot turn; False when it was seen before (a provider's retry)."""

    async def status(self, update: StatusUpdate) -> None:
        """Record a provider's delivery report."""


class Channel(Protocol):
    name: str

    def routes(self, handler: MessageHandler) -> list[web.RouteDef]:
        """HTTP/WebSocket routes that receive this channel's traffic."""

    async def deliver(self, address: str, replies: list[Reply], in_reply_to: str | None) -> None:
        """Send replies that were not returned in the request's own response."""


# --- outbound: what the dispatcher carries and what providers answer ---------------------------

PRIORITIES = ("emergency", "reply", "bulk")  # the dispatcher always drains them in this order


@dataclass(frozen=True)
class Outgoing:
    """One message, rendered for its channel, ready for a provider. Self-contained so that any
    worker process can send it; `ref` names the record its outcome is written to."""

    channel: str  # "sms" | "wechat"
    to: str  # phone number (E.164) or openid
    text: str
    ref: str  # e.g. "message:42" (a chat reply) or "recipient:7" (a broadcast)
    priority: str = "reply"
    segments: int = 1  # SMS segments this text costs (the rate limit may count segments)
    template: dict[str, Any] | None = None  # WeChat template message: {"template_id": ..., "data": {...}}
    attempt: int = 0  # sends tried so far

    def as_fields(self) -> dict[str, str]:
        """Flat string fields, as a Redis stream entry stores them."""
        fields = {k: v for k, v in self.__dict__.items() if k != "template"}
        fields = {k: str(v) for k, v in fields.items()}
        if self.template is not None:
            fields["template"] = json.dumps(self.template, ensure_ascii=False)
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Outgoing:
        template = fields.get("template")
        return cls(
            channel=fields["channel"],
            to=fields["to"],
            text=fields["text"],
            ref=fields["ref"],
            priority=fields.get("priority", "reply"),
            segments=int(fields.get("segments", 1)),
            template=json.loads(template) if template else None,
            attempt=int(fields.get("attempt", 0)),
        )


@dataclass(frozen=True)
class SendResult:
    provider_id: str  # Twilio's Message SID, WeChat's msgid
    status: str = "sent"  # the provider's own word for where the message is: queued | sent | ...


class SendError(Exception):
    """A provider refused or could not be reached. `kind` tells the dispatcher what to do:
    retry (429, 5xx, timeouts: back off and try again), permanent (invalid number, bad request:
    record the failure), opted_out (the recipient stopped us: record it, never retry),
    window_closed (WeChat's 48-hour customer-service window is over: fall back)."""

    def __init__(self, kind: str, reason: str, code: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(f"{kind}: {reason}" + (f" (code {code})" if code else ""))
        self.kind, self.reason, self.code, self.retry_after_s = kind, reason, code, retry_after_s


class Sender(Protocol):
    """Delivers rendered messages to one provider."""

    channel: str

    async def send(self, message: Outgoing) -> SendResult:
        """Raises SendError for anything but success."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's later word on a message it accepted (Twilio status callbacks)."""

    channel: str
    provider_id: str
    status: str  # queued | sent | delivered | undelivered | failed | read
    error_code: str | None = None
