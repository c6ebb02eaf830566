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
class Rendering:
    """A turn's replies as one channel carries them, with what the citizen's next message may refer to."""

    messages: list[Rendered]
    menu: list[str] = field(default_factory=list)  # the payloads behind the numbers shown: "1" picks menu[0]
    rest: str = ""  # what "更多" shows next; empty when the whole answer fitted


@dataclass(frozen=True)
class ChannelEvent:
    """A provider event in the gateway's words: a new follower, a menu button pressed, or something
    recorded with no answer (unfollow, location, scan)."""

    kind: str  # follow | button | other
    key: str = ""  # the button's payload, or the provider's own name for an "other" event


@dataclass(frozen=True)
class Notice:
    """A broadcast or school notice as one channel carries it."""

    text: str
    segments: int = 1
    template: dict[str, Any] | None = None  # a WeChat template message


class Wire(Protocol):
    """What the gateway asks of a channel about its citizens' messages, so that it never asks which
    channel a message came from. One object per channel, built once per process."""

    name: str
    answers_in_request: bool  # the request that brought the message carries the answer (web chat)
    address_is_phone: bool  # the sender's address is a phone number its carrier vouches for (SMS)
    binds_phone: bool  # citizens prove a phone here with an SMS code ("绑定+手机号")
    numbered_menus: bool  # buttons go out as numbered lines: a later "1" or "更多" refers to the last answer
    carries_notices: bool  # broadcasts and school notices go out on it (and parents acknowledge them there)
    addressed_by: str  # where a citizen's address on it is kept: phone | identity | push_subscription
    label: str  # its name for citizens and staff: "短信", "微信"
    falls_back_to_phone: bool  # a message it cannot deliver goes to the citizen's phone by SMS instead
    phone_proof_days: int | None  # a phone proved here by SMS code counts this long (None: until logout)

    def render(self, replies: list[Reply]) -> Rendering:
        """The replies as this channel carries them (numbered menus, the SMS signature, cuts)."""

    def keyword(self, text: str) -> str | None:
        """ "stop", "start" or "help" when the text is one of this channel's keywords, else None."""

    def event(self, message: InboundMessage) -> ChannelEvent | None:
        """The provider event this message is, or None for a message the citizen wrote."""

    def notice(self, title: str, body: str, reminder: str, ack: str) -> Notice:
        """A notice as this channel carries it; `reminder` marks a repeat ("" for the first), `ack` asks
        for a reply ("" when none is asked; a channel citizens cannot reply on leaves it out)."""

    def window_closed(self, message: Outgoing) -> Outgoing | None:
        """This channel's own second try when the provider says the reply window is closed (a WeChat
        template message); None when it has none."""


class PlainWire:
    """Defaults for a channel with no keywords, no events, no fallback of its own."""

    name = ""
    answers_in_request = False
    address_is_phone = False
    binds_phone = False
    numbered_menus = False
    carries_notices = False
    addressed_by = "identity"
    label = ""
    falls_back_to_phone = False
    phone_proof_days: int | None = None

    def render(self, replies: list[Reply]) -> Rendering:
        return Rendering([Rendered(r.text, r.buttons) for r in replies])

    def keyword(self, text: str) -> str | None:
        return None

    def event(self, message: InboundMessage) -> ChannelEvent | None:
        return None

    def notice(self, title: str, body: str, reminder: str, ack: str) -> Notice:
        return Notice(f"【{reminder}{title}】{body}{ack}" if title else f"{reminder}{body}{ack}")

    def window_closed(self, message: Outgoing) -> Outgoing | None:
        return None


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
    rendering: Rendering | None = None  # as the channel carries the replies (None for a replay)


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

    def routes(self, handler: MessageHandler) -> list[web.AbstractRouteDef]:
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
    trace_id: str = ""  # the id of the citizen's message this answers, for the logs (common/trace.py)

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
            trace_id=fields.get("trace_id", ""),
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
    opted_out: bool = False  # the provider says the recipient stopped us (Twilio's 21610): never send again
