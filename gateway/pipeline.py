"""The path every inbound message takes, whatever its channel:
normalise → refuse what must be refused → dedupe → conversation → bot → record replies."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import InboundMessage, OutboundRecord, Rendered, Reply, TurnResult
from gateway import conversations
from gateway.bridge import BotUnavailable, RasaBridge
from gateway.config import Settings
from gateway.db.models import Message, utcnow
from gateway.logs import mask
from gateway.state import StateStore

log = logging.getLogger(__name__)

BUSY = "系统繁忙，请稍后再试。您的消息已记录，我们会尽快恢复服务。"
EMPTY = "请输入您要咨询的内容，例如“12路公交车到哪了”。"
TOO_LONG = "您的消息太长了，请控制在{limit}字以内，分几条发送。"
RATE_LIMITED = "您发送得太频繁了，请稍等一分钟再试。"
IN_PROGRESS = "这条消息正在处理中，请稍候。"
SESSION_CACHE_S = 3600

# Renders a turn's replies for a channel whose replies go out through the dispatcher (SMS, WeChat).
Renderer = Callable[[InboundMessage, list[Reply]], Awaitable[list[Rendered]]]


class MessagePipeline:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        bridge: RasaBridge,
        normalise: Callable[[str], str] = str.strip,
        renderers: dict[str, Renderer] | None = None,
    ) -> None:
        self.settings, self.sessions, self.state, self.bridge = settings, sessions, state, bridge
        self.normalise = normalise
        self.renderers = renderers or {}

    async def handle(self, message: InboundMessage, local: list[Reply] | None = None) -> TurnResult:
        """One turn. `local` answers without the bot (SMS keywords, "更多"): recorded the same way."""
        text = self.normalise(message.text or "")
        if not text:
            return TurnResult([], refusal=EMPTY, refusal_code="empty")
        if len(text) > self.settings.max_text_chars:
            return TurnResult([], refusal=TOO_LONG.format(limit=self.settings.max_text_chars), refusal_code="too_long")
        rate_key = f"rate:{message.channel}:{message.sender}"
        if await self.state.hit(rate_key, 60) > self.settings.rate_limit_per_minute:
            return TurnResult([], refusal=RATE_LIMITED, refusal_code="rate_limited")

        claim = f"dedupe:{message.channel}:{message.external_id}"
        if not await self.state.claim(claim, self.settings.dedupe_ttl_s):
            return await self._replay(message)
        try:
            return await self._turn(message, text, local)
        except IntegrityError:
            # The message log already has it (e.g. the claim expired): answer as a duplicate.
            return await self._replay(message)
        except BaseException:
            # Nothing was recorded: let a retry of this message through.
            await self.state.release(claim)
            raise

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

    async def _turn(self, message: InboundMessage, text: str, local: list[Reply] | None) -> TurnResult:
        async with self.sessions() as db:
            conversation_id, citizen_id = await self._conversation(db, message)
            inbound = Message(
                conversation_id=conversation_id,
                direction="in",
                channel=message.channel,
                external_id=message.external_id,
                text=text,
            )
            db.add(inbound)
            await db.commit()
            return await self._answer(db, inbound, citizen_id, message, local)

    async def _answer(
        self,
        db: AsyncSession,
        inbound: Message,
        citizen_id: int,
        message: InboundMessage,
        local: list[Reply] | None = None,
    ) -> TurnResult:
        metadata = {
            **message.metadata,  # the channel's first: who is asking is the gateway's word, never overridden
            "channel": message.channel,
            "message_id": message.external_id,
            "citizen_id": citizen_id,
        }
        if local is not None:
            replies, inbound.status = local, "answered"
        else:
            # The action server shows personal records to this phone only (bot/actions/context.py).
            metadata["verified_phone"] = await conversations.verified_phone(
                db, message.channel, message.sender, citizen_id
            )
            try:
                bot_replies = await self.bridge.turn(inbound.conversation_id, inbound.text, metadata)
                replies = [Reply(r.text, r.buttons) for r in bot_replies if r.text or r.buttons]
                inbound.status = "answered"
            except BotUnavailable as exc:
                log.warning("turn for %s kept unanswered: %s", mask(message.sender), exc)
                replies = [Reply(BUSY)]
                inbound.status, inbound.error = "bot_failed", str(exc)[:255]
        renderer = self.renderers.get(message.channel)
        if renderer is None:  # delivered in the request itself (web chat)
            rendered, status = [Rendered(r.text, r.buttons) for r in replies], "sent"
        else:  # recorded as queued in the same transaction as the answer: a crash cannot lose it
            rendered, status = (await renderer(message, replies) if replies else []), "queued"
        db.add(inbound)
        rows = [
            Message(
                conversation_id=inbound.conversation_id,
                direction="out",
                channel=message.channel,
                text=r.text,
                buttons=r.buttons or None,
                segments=r.segments,
                status=status,
                in_reply_to=inbound.id,
            )
            for r in rendered
        ]
        db.add_all(rows)
        await db.commit()
        return TurnResult(replies, conversation_id=inbound.conversation_id, outbound=[_record(m) for m in rows])

    def _stale(self, inbound: Message) -> bool:
        """Recorded but never answered for longer than a turn can take: its process died."""
        age = (utcnow() - inbound.created_at).total_seconds()
        return age > self.settings.rasa_timeout_s * (self.settings.rasa_retries + 1) + 5

    async def _replay(self, message: InboundMessage) -> TurnResult:
        """A message seen before gets the replies it got the first time, never a second bot turn;
        one that the bot never answered (Rasa was away, or the process died half-way) is tried again."""
        async with self.sessions() as db:
            inbound = await conversations.find_inbound(db, message.channel, message.external_id)
            retry = inbound is not None and (
                inbound.status == "bot_failed"  # the citizen resends after "系统繁忙": try the bot again
                or (inbound.status == "received" and self._stale(inbound))
            )
            if retry:
                citizen_id = await conversations.citizen_of(db, inbound.conversation_id)
                return await self._answer(db, inbound, citizen_id, message)
            if inbound is None or inbound.status == "received":
                return TurnResult([Reply(IN_PROGRESS)], duplicate=True)
            sent = await conversations.replies_to(db, inbound.id)
            replies = [Reply(m.text, m.buttons or []) for m in sent]
            return TurnResult(
                replies, conversation_id=inbound.conversation_id, duplicate=True, outbound=[_record(m) for m in sent]
            )


def _record(message: Message) -> OutboundRecord:
    assert message.id is not None
    return OutboundRecord(message.id, message.text, message.segments, message.status)
