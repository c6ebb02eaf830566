"""The small contract every channel implements, and the shapes that cross it.

A channel knows its provider's wire format and nothing about the bot: it verifies and parses
inbound requests into InboundMessage, and renders and delivers the bot's replies."""

from __future__ import annotations

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


@dataclass
class TurnResult:
    """What the pipeline did with one inbound message."""

    replies: list[Reply]
    conversation_id: str | None = None
    duplicate: bool = False
    refusal: str | None = None  # a Chinese sentence for the citizen when the message was refused
    refusal_code: str | None = None  # machine-readable: empty | too_long | rate_limited


class MessageHandler(Protocol):
    """What a channel hands inbound messages to (the gateway's pipeline)."""

    async def handle(self, message: InboundMessage) -> TurnResult: ...


class Channel(Protocol):
    name: str

    def routes(self, handler: MessageHandler) -> list[web.RouteDef]:
        """HTTP/WebSocket routes that receive this channel's traffic."""

    async def deliver(self, address: str, replies: list[Reply], in_reply_to: str | None) -> None:
        """Send replies that were not returned in the request's own response."""
