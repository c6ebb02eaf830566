"""What a citizen meets of the handoff, as pre-bot responders (gateway/inbound/responders.py), and the
check after a bot turn that offers a person when the bot did not understand twice in a row.

- `handed_off` (right after provider events): while the address has an open ticket, the message goes
  to the agent instead of the bot: recorded in the conversation's log with no reply, announced to the
  open consoles. The bot stays paused — held here, in the gateway — until the agent closes. Right after
  a close, a "1"–"5" is the citizen's rating.
- `asks`: "转人工", "人工客服", "找真人"… opens a ticket and says its number and the wait (or when
  someone will answer: out of hours, nobody online); an emergency first gets 110/119/120/122 and the
  offer of a person.
- `progress`: "我的投诉进度" lists the citizen's 12345 work orders (workorders.py) with their statuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import InboundMessage, Reply, Wire
from common.clock import utcnow
from gateway.config import Settings
from gateway.db.models import Handoff
from gateway.handoff import store, workorders
from gateway.handoff.delivery import Delivery
from gateway.inbound.responders import Answered, Responder
from gateway.state import StateStore
from intents.menu import SORRY
from intents.zh import normalize_text

OPENED = "已为您转人工客服，工单号{number}。{wait}请直接发送您的问题，客服会在这里回复您。"
WAIT = "前面还有{ahead}位，预计等待约{minutes}分钟。"
NEXT = "马上为您接通。"
NOBODY = "现在客服都不在线，您的留言会记下，客服上线后第一时间回复您。"
# Residents also speak in 新疆时间 (two hours behind Beijing time): both clocks, so nobody waits wrongly.
CLOSED_HOURS = (
    "人工服务时间为每天北京时间{opens}到{closes}（新疆时间{xj_opens}到{xj_closes}），现在不在服务时间。"
    "您的留言会记下，客服{when}（北京时间）上班后回复您。"
)
STILL_WAITING = "您已在排队等人工客服，工单号{number}。{wait}有什么问题可以先发过来。"
RATED = "谢谢您的评价！以后有问题直接发消息就行，需要人工请回复“转人工”。"
OFFER = "我好像没弄明白您的意思。需要人工客服帮您吗？请回复“转人工”。"
EMERGENCY = "情况紧急请马上打电话：报警110，火警119，急救120，交通事故122。"
SCAM = "这很可能是诈骗：请马上停止转账，不要告诉对方验证码，打110报警或打反诈专线96110。"
OFFER_AFTER_EMERGENCY = "需要人工客服帮您，请回复“转人工”。"

# What residents write when they want a person (read on the normalised text: traditional and
# full-width forms are folded already; 专人工 is the pinyin slip of 转人工). A whole short message
# "人工"/"真人"/"客服" counts too.
ASKS = re.compile(
    r"[转专]人工|人工客服|人工服务|人工坐席|人工接待|[找要接]人工|[找要转]真人|找个真人|真人客服|真人服务|[找转要]客服"
)
ALONE = {"人工", "真人", "客服"}
# Something happening now (these answer instead of the bot, so words that also fit an ordinary
# question — 出血, 受伤 alone, 交通事故认定 — are left out: the bot answers those).
EMERGENCIES = re.compile(
    r"着火|失火|起火了|冒烟了|煤气泄漏|燃气泄漏|天然气泄漏|车祸|撞车了|被车撞|撞人了|出事故了|受伤了|流血了|"
    r"晕倒|昏倒|昏迷|不省人事|救命|没呼吸|没气了|溺水|落水了|触电|抢劫|被人打|打架|砍人|行凶|跳楼"
)
# A scam under way, not a question about one ("刷单返利诈骗有什么特点" is the bot's fraud_warning).
SCAMS = re.compile(r"被骗|遇到骗子|(让|叫|要)我(转账|汇款|打钱)|转到安全账户")
# The bot's replies that mean it did not understand (intents/menu.py: out_of_scope, did_you_mean).
MISUNDERSTOOD = (SORRY, "没太明白您的意思")
MISSES_TTL_S = 3600
OFFERED_TTL_S = 600  # "转人工" this soon after our offer takes it up
RATINGS = {**{str(n): n for n in range(1, 6)}, **{w: n for n, w in enumerate("一二三四五", 1)}}
MARK_TTL_S = 30 * 24 * 3600  # a mark outlives any ticket; prime() sets them again at start


def _xinjiang(beijing: time) -> str:
    return f"{(beijing.hour - 2) % 24}:{beijing.minute:02d}"


def _key(kind: str, message: InboundMessage) -> str:
    return f"{kind}:{message.channel}:{message.sender}"


def mark(channel: str, address: str) -> str:
    """The state key saying this address has a ticket that takes its next message."""
    return f"handoff:{channel}:{address}"


def asks_for_person(text: str) -> bool:
    text = normalize_text(text)
    return bool(ASKS.search(text)) or text.rstrip("。.!！?？ ") in ALONE


@dataclass
class CitizenSide:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    state: StateStore
    delivery: Delivery

    def responders(self) -> list[Responder]:
        return [self.handed_off, self.asks, self.progress]

    async def progress(self, message: InboundMessage, wire: Wire) -> Answered | None:
        """ "我的投诉进度": the citizen's 12345 work orders and where each stands."""
        if not workorders.asks_for_progress(normalize_text(message.text or "")):
            return None
        async with self.sessions() as db:
            return Answered(message, [Reply(await workorders.progress(db, message.channel, message.sender))])

    async def handed_off(self, message: InboundMessage, wire: Wire) -> Answered | None:
        key = mark(message.channel, message.sender)
        if await self.state.get_json(key) is None:
            return None  # the common case, answered before the conversation queue without the database
        async with self.sessions() as db:
            handoff = await store.current(db, message.channel, message.sender)
            if handoff is None or handoff.status == "closed":
                await self.state.release(key)  # a rating is taken or let go: one message either way
                return None if handoff is None else await self._rating(db, handoff, message)
            if handoff.status == "waiting" and asks_for_person(message.text):
                return Answered(message, [Reply(await self._still_waiting(db, handoff))])
            handoff.last_citizen_at = utcnow()
            db.add(handoff)
            await db.commit()
            await self.delivery.announce("message", handoff, status=handoff.status, agent=handoff.agent_id)
        return Answered(message, [])  # recorded in the log the agent reads; no bot, no reply

    async def prime(self) -> None:
        """Mark the addresses of tickets that take the next message: the marks are a cache of the
        database, which alone says who is handed off (an in-memory state starts empty after a restart)."""
        async with self.sessions() as db:
            tickets = await store.pending(db)
        for handoff in tickets:
            await self.state.set_json(mark(handoff.channel, handoff.address), handoff.id, MARK_TTL_S)

    async def asks(self, message: InboundMessage, wire: Wire) -> Answered | None:
        text = normalize_text(message.text or "")
        offered = _key("offered", message)
        if asks_for_person(text):
            # Why the citizen asked: the console shows "紧急情况" or "机器人未听懂" after our offer.
            reason = await self.state.get_json(offered) or "asked"
            return Answered(message, [Reply(await self.open(message, reason))])
        lines = []
        if EMERGENCIES.search(text):
            lines.append(EMERGENCY)
        if SCAMS.search(text):
            lines.append(SCAM)
        if lines:
            await self.state.set_json(offered, "emergency", OFFERED_TTL_S)
            return Answered(message, [Reply("\n".join([*lines, OFFER_AFTER_EMERGENCY]))])
        return None

    async def open(self, message: InboundMessage, reason: str) -> str:
        """A new ticket for this address, and what the citizen is told about it."""
        async with self.sessions() as db:
            handoff = await store.open_handoff(db, message.channel, message.sender, reason)
            await self.state.set_json(mark(message.channel, message.sender), handoff.id, MARK_TTL_S)
            told = await self._wait(db, handoff)
            await self.delivery.announce("waiting", handoff)
        return OPENED.format(number=handoff.number, wait=told)

    async def after_bot(self, message: InboundMessage, replies: list[Reply]) -> list[Reply]:
        """Two misunderstandings in a row: the second one offers a person."""
        key = _key("misses", message)
        if not any(r.text.startswith(MISUNDERSTOOD) for r in replies):
            await self.state.release(key)
            return replies
        misses = int(await self.state.get_json(key) or 0) + 1
        if misses < 2:
            await self.state.set_json(key, misses, MISSES_TTL_S)
            return replies
        await self.state.release(key)
        await self.state.set_json(_key("offered", message), "misunderstood", OFFERED_TTL_S)
        return [*replies, Reply(OFFER)]

    async def _rating(self, db: AsyncSession, handoff: Handoff, message: InboundMessage) -> Answered | None:
        rating = RATINGS.get(normalize_text(message.text or "").rstrip("分星颗。.!！ "))
        handoff.awaiting_rating = False
        handoff.rating = rating
        db.add(handoff)
        await db.commit()
        return None if rating is None else Answered(message, [Reply(RATED)])

    async def _still_waiting(self, db: AsyncSession, handoff: Handoff) -> str:
        return STILL_WAITING.format(number=handoff.number, wait=await self._wait(db, handoff))

    async def _wait(self, db: AsyncSession, handoff: Handoff) -> str:
        if not store.answering(self.settings):
            opens, closes = store.hours(self.settings)
            when = store.next_opening(self.settings)
            return CLOSED_HOURS.format(
                opens=f"{opens:%H:%M}",
                closes=f"{closes:%H:%M}",
                xj_opens=_xinjiang(opens),
                xj_closes=_xinjiang(closes),
                when=when,
            )
        found = await store.queue(db, before_id=handoff.id)
        if found.agents_online == 0:
            return NOBODY
        if found.waiting_ahead == 0:
            return NEXT
        minutes = -(-(found.waiting_ahead + 1) * self.settings.handoff_minutes_per_citizen // found.agents_online)
        return WAIT.format(ahead=found.waiting_ahead, minutes=minutes)
