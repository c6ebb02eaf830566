"""One turn of a conversation, the same for every channel: refusals (empty, too long, too fast) → the
conversation → the inbound message recorded → the responders' answer or the bot's → rendered for the
channel → the replies recorded in the same transaction (a crash cannot lose them) → TurnResult.

A message recorded before (a worker died after recording it, or the citizen's browser sent it twice)
gets the replies it got the first time, never a second bot turn; one the bot never answered (Rasa was
away, or the process died half-way) is tried again."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import InboundMessage, OutboundRecord, Rendering, Reply, TurnResult, Wire
from common import trace
from common.privacy import mask_numbers
from gateway import metrics
from gateway.config import Settings
from gateway.db import conversations
from gateway.db.engine import saved_id
from gateway.db.models import Message, UnansweredQuestion, utcnow
from gateway.inbound.bridge import BotUnavailable, RasaBridge
from gateway.logs import mask
from gateway.state import StateStore

log = logging.getLogger(__name__)

BUSY = "系统繁忙，请稍后再试。您的消息已记录，我们会尽快恢复服务。"
EMPTY = "请输入您要咨询的内容，例如“12路公交车到哪了”。"
TOO_LONG = "您的消息太长了，请控制在{limit}字以内，分几条发送。"
RATE_LIMITED = "您发送得太频繁了，请稍等一分钟再试。"
RATE_LIMITED_ADDRESS = "您所在网络发送的消息太频繁了，请稍等一分钟再试。"
IN_PROGRESS = "这条消息正在处理中，请稍候。"
SESSION_CACHE_S = 3600

# Looks at the bot's replies before they are rendered and may add to them (the handoff's offer of a
# person after two misunderstandings in a row).
AfterBot = Callable[[InboundMessage, list[Reply]], Awaitable[list[Reply]]]


class Turns:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        bridge: RasaBridge,
        normalise: Callable[[str], str] = str.strip,
    ) -> None:
        self.settings, self.sessions, self.state, self.bridge = settings, sessions, state, bridge
        self.normalise = normalise
        self.after_bot: AfterBot | None = None  # set by Messaging.build

    async def refusal(self, message: InboundMessage) -> TurnResult | None:
        """Why this message gets no turn, in the citizen's words, or None."""
        refused = await self._refusal(message)
        if refused is not None:
            metrics.REFUSALS.labels(message.channel, refused.refusal_code or "other").inc()
        return refused

    async def _refusal(self, message: InboundMessage) -> TurnResult | None:
        text = self.normalise(message.text or "")
        if not text:
            return TurnResult([], refusal=EMPTY, refusal_code="empty")
        if len(text) > self.settings.max_text_chars:
            return TurnResult([], refusal=TOO_LONG.format(limit=self.settings.max_text_chars), refusal_code="too_long")
        if await self.state.hit(f"rate:{message.channel}:{message.sender}", 60) > self.settings.rate_limit_per_minute:
            return TurnResult([], refusal=RATE_LIMITED, refusal_code="rate_limited")
        if client := message.metadata.get("client_address"):  # new sessions must not lift the limit
            key = f"rate-address:{message.channel}:{client}"
            hit = await self.state.hit_sliding(key, 60)
            if hit.count > self.settings.rate_limit_per_address_per_minute:
                await self.state.forget(key, hit.id)  # a refused message never ran: the window frees up
                return TurnResult([], refusal=RATE_LIMITED_ADDRESS, refusal_code="rate_limited")
        return None

    async def take(self, message: InboundMessage, wire: Wire, local: list[Reply] | None) -> TurnResult:
        """The turn of a message seen for the first time. `local`: answered without the bot."""
        started = time.perf_counter()
        try:
            return await self._take(message, wire, local)
        finally:
            metrics.TURN_DURATION.labels(message.channel).observe(time.perf_counter() - started)

    async def _take(self, message: InboundMessage, wire: Wire, local: list[Reply] | None) -> TurnResult:
        try:
            async with self.sessions() as db:
                conversation_id, citizen_id = await self._conversation(db, message)
                inbound = Message(
                    conversation_id=conversation_id,
                    direction="in",
                    channel=message.channel,
                    external_id=message.external_id,
                    text=message.text,  # as the citizen wrote it; only the bot reads the normalised form
                )
                db.add(inbound)
                await db.commit()
                return await self._answer(db, inbound, citizen_id, message, wire, local)
        except IntegrityError:  # recorded before (a worker died after recording it): answer as a duplicate
            return await self.replay(message, wire)

    async def _conversation(self, db: AsyncSession, message: InboundMessage) -> tuple[str, int]:
        """(conversation id, citizen id), from the shared session cache when the address is known."""
        key = f"conv:{message.channel}:{message.sender}"
        cached = await self.state.get_json(key)
        if cached:
            return cached["conversation"], cached["citizen"]
        conversation = await conversations.open_conversation(db, message.channel, message.sender)
        await self.state.set_json(
            key, {"conversation": conversation.id, "citizen": conversation.citizen_id}, SESSION_CACHE_S
        )
        return conversation.id, conversation.citizen_id

    async def _answer(
        self,
        db: AsyncSession,
        inbound: Message,
        citizen_id: int,
        message: InboundMessage,
        wire: Wire,
        local: list[Reply] | None = None,
    ) -> TurnResult:
        metadata = {
            **message.metadata,  # the channel's first: who is asking is the gateway's word, never overridden
            "channel": message.channel,
            "message_id": message.external_id,
            "citizen_id": citizen_id,
            trace.METADATA_KEY: trace.current(),  # the action server's log lines carry it too
        }
        if local is not None:
            replies, inbound.status, result = local, "answered", "responder"
        else:
            # The action server shows personal records to this phone only (bot/actions/context.py).
            metadata["verified_phone"] = await conversations.verified_phone(db, wire, message.sender, citizen_id)
            try:
                bot = await self.bridge.answer(inbound.conversation_id, self.normalise(inbound.text), metadata)
                replies = [r for r in bot.replies if r.text or r.buttons]
                if self.after_bot is not None:
                    replies = await self.after_bot(message, replies)
                inbound.status, result = "answered", bot.outcome or "answered"
                if bot.outcome is not None:
                    _keep_unanswered(db, inbound, bot.outcome)
            except BotUnavailable as exc:
                log.warning("turn for %s kept unanswered: %s", mask(message.sender), exc)
                replies = [Reply(BUSY)]
                inbound.status, inbound.error, result = "bot_failed", str(exc)[:255], "bot_failed"
        metrics.TURNS.labels(message.channel, result).inc()
        log.info("turn on %s for %s: %s", message.channel, mask(message.sender), result)
        rendering = wire.render(replies) if replies else Rendering([])
        db.add(inbound)
        rows = conversations.outbound_rows(
            wire, message.channel, inbound.conversation_id, rendering, in_reply_to=inbound.id
        )
        db.add_all(rows)
        await db.commit()
        return TurnResult(
            replies,
            conversation_id=inbound.conversation_id,
            outbound=[_record(m) for m in rows],
            rendering=rendering,
        )

    def _stale(self, inbound: Message) -> bool:
        """Recorded but never answered for longer than a turn can take: its process died."""
        age = (utcnow() - inbound.created_at).total_seconds()
        return age > self.settings.rasa_timeout_s * (self.settings.rasa_retries + 1) + 5

    async def replay(self, message: InboundMessage, wire: Wire) -> TurnResult:
        async with self.sessions() as db:
            inbound = await conversations.find_inbound(db, message.channel, message.external_id)
            retry = inbound is not None and (
                inbound.status == "bot_failed"  # the citizen resends after "系统繁忙": try the bot again
                or (inbound.status == "received" and self._stale(inbound))
            )
            if retry:
                assert inbound is not None
                citizen_id = await conversations.citizen_of(db, inbound.conversation_id)
                return await self._answer(db, inbound, citizen_id, message, wire)
            if inbound is None or inbound.status == "received":
                return TurnResult([Reply(IN_PROGRESS)], duplicate=True)
            sent = await conversations.replies_to(db, saved_id(inbound))
            replies = [Reply(m.text, m.buttons or []) for m in sent]
            return TurnResult(
                replies, conversation_id=inbound.conversation_id, duplicate=True, outbound=[_record(m) for m in sent]
            )


def _keep_unanswered(db: AsyncSession, inbound: Message, outcome: str) -> None:
    """The question the bot could not serve, for staff to review: in the turn's transaction, numbers masked."""
    assert inbound.id is not None
    text = mask_numbers(inbound.text)[:1000]
    db.add(UnansweredQuestion(message_id=inbound.id, channel=inbound.channel, text=text, outcome=outcome))


def _record(message: Message) -> OutboundRecord:
    assert message.id is not None
    return OutboundRecord(message.id, message.text, message.segments, message.status)
