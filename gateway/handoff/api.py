"""The agents' inbox under /api/staff/handoffs: the staff API's endpoints (same guard: session, CSRF,
role, validation, audit; same OpenAPI document), for agents and supervisors (admins).

Claiming is one conditional UPDATE (store.claim): of two agents claiming at once exactly one wins, the
other gets 409. Replies go to the citizen on their channel through the dispatcher (delivery.py). The
citizen's phone number, openid or web chat session is masked unless the agent reveals it (audited).
The live feed is server-sent events of new waiting tickets and citizens' messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from common.clock import utcnow
from gateway.config import Settings
from gateway.db.models import Handoff, HandoffEntry, Message, StaffUser
from gateway.handoff import schemas as h
from gateway.handoff import store
from gateway.handoff.delivery import FEED, Delivery
from gateway.logs import mask
from gateway.staff.api import PREFIX, Ctx, out
from gateway.staff.errors import ApiError, not_found
from gateway.staff.openapi import Endpoint
from gateway.state import StateStore
from gateway.state.base import Subscription
from gateway.wires import Wires
from intents.services import catalogue

AGENTS = frozenset(store.AGENT_ROLES)
PING_S = 20.0  # an idle event stream still says it is alive (and keeps the agent "online")
TRANSCRIPT_LIMIT = 200
CLOSED = (
    "本次人工服务已结束，谢谢您的耐心。请给这次服务打个分：回复1到5（5分最满意）。"
    "以后有问题直接发消息就行，需要人工请回复“转人工”。"
)
GENERAL = h.TeamOut(id="general", name="综合")


class HandoffApi:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        wires: Wires,
        delivery: Delivery,
    ) -> None:
        self.settings, self.sessions, self.state, self.wires, self.delivery = settings, sessions, state, wires, delivery
        self._stopping = asyncio.Event()

    def endpoints(self) -> list[Endpoint]:
        P, E = f"{PREFIX}/handoffs", Endpoint
        one = rf"{P}/{{id:\d+}}"
        return [
            E(
                "GET",
                P,
                self.list_,
                "人工服务：排队中、我接待中、全部",
                AGENTS,
                query=h.HandoffsQuery,
                response=h.HandoffsOut,
            ),
            E(
                "GET",
                f"{P}/stats",
                self.stats,
                "队列长度、最长等待、在线客服与可转的组",
                AGENTS,
                response=h.InboxStatsOut,
            ),
            E("GET", f"{P}/stream", self.stream, "实时推送（server-sent events）：新排队与居民新消息", AGENTS),
            E("GET", one, self.detail, "工单与完整对话（含机器人回复、内部备注）", AGENTS, response=h.HandoffDetailOut),
            E(
                "POST",
                f"{one}/claim",
                self.claim,
                "接单（两人同时接单只有一人成功）",
                AGENTS,
                response=h.HandoffEnvelope,
            ),
            E(
                "POST",
                f"{one}/reply",
                self.reply,
                "回复居民（经原渠道发送）",
                AGENTS,
                body=h.ReplyIn,
                response=h.HandoffEnvelope,
            ),
            E(
                "POST",
                f"{one}/note",
                self.note,
                "内部备注（居民看不到）",
                AGENTS,
                body=h.NoteIn,
                response=h.HandoffEnvelope,
            ),
            E(
                "POST",
                f"{one}/transfer",
                self.transfer,
                "转给一个组或一位同事",
                AGENTS,
                body=h.TransferIn,
                response=h.HandoffEnvelope,
            ),
            E(
                "POST",
                f"{one}/close",
                self.close,
                "结束服务：分类与处理结果；机器人恢复，请居民评分",
                AGENTS,
                body=h.CloseIn,
                response=h.HandoffEnvelope,
            ),
            E("POST", f"{one}/reveal", self.reveal, "查看完整联系方式（记入审计）", AGENTS, response=h.ContactOut),
        ]

    # --- reading ------------------------------------------------------------------------------

    async def list_(self, ctx: Ctx) -> web.Response:
        q: h.HandoffsQuery = ctx.query
        self._seen(ctx)
        query = select(Handoff)
        if q.view == "waiting":
            query = query.where(Handoff.status == "waiting").order_by(col(Handoff.id))
        elif q.view == "mine":
            query = query.where(Handoff.status == "claimed", Handoff.agent_id == ctx.me.id).order_by(col(Handoff.id))
        elif q.view == "open":
            query = query.where(col(Handoff.status).in_(store.OPEN)).order_by(col(Handoff.id))
        else:
            query = query.where(Handoff.status == "closed").order_by(col(Handoff.id).desc())
        rows = (await ctx.db.exec(query.limit(q.limit))).all()
        names = await self._names(ctx.db, {r.agent_id for r in rows})
        return out(h.HandoffsOut, handoffs=[self._shown(r, names) for r in rows])

    async def stats(self, ctx: Ctx) -> web.Response:
        self._seen(ctx)
        counts = dict((await ctx.db.exec(select(Handoff.status, func.count()).group_by(Handoff.status))).all())
        oldest = (await ctx.db.exec(select(func.min(Handoff.opened_at)).where(Handoff.status == "waiting"))).one()
        agents = (
            await ctx.db.exec(
                select(StaffUser).where(col(StaffUser.role).in_(store.AGENT_ROLES), col(StaffUser.active))
            )
        ).all()
        since = utcnow() - store.ONLINE_WINDOW
        shown = [
            h.AgentOut(
                id=a.id or 0, display_name=a.display_name, online=bool(a.last_seen_at and a.last_seen_at >= since)
            )
            for a in agents
        ]
        return out(
            h.InboxStatsOut,
            waiting=counts.get("waiting", 0),
            claimed=counts.get("claimed", 0),
            longest_wait_s=int((utcnow() - oldest).total_seconds()) if oldest else 0,
            agents_online=sum(a.online for a in shown),
            teams=self.teams(),
            agents=shown,
        )

    async def detail(self, ctx: Ctx) -> web.Response:
        handoff = await self._get(ctx)
        messages = (
            await ctx.db.exec(
                select(Message)
                .where(Message.conversation_id == handoff.conversation_id)
                .order_by(col(Message.id).desc())
                .limit(TRANSCRIPT_LIMIT)
            )
        ).all()
        entries = (
            await ctx.db.exec(
                select(HandoffEntry).where(HandoffEntry.handoff_id == handoff.id).order_by(col(HandoffEntry.id))
            )
        ).all()
        names = await self._names(ctx.db, {e.staff_id for e in entries} | {handoff.agent_id})
        by_agent = {e.message_id: names.get(e.staff_id) for e in entries if e.kind == "reply"}
        transcript = [
            h.TranscriptEntry(
                kind="agent" if m.id in by_agent else m.direction,  # type: ignore[arg-type]
                text=m.text,
                at=m.created_at,
                staff_name=by_agent.get(m.id),
            )
            for m in reversed(messages)
        ]
        transcript += [
            h.TranscriptEntry(kind=e.kind, text=e.text, at=e.at, staff_name=names.get(e.staff_id))  # type: ignore[arg-type]
            for e in entries
            if e.kind != "reply"
        ]
        transcript.sort(key=lambda t: t.at)
        ctx.record("handoff_view", _target(handoff))
        self._seen(ctx)
        return out(h.HandoffDetailOut, handoff=self._shown(handoff, names), transcript=transcript)

    async def reveal(self, ctx: Ctx) -> web.Response:
        handoff = await self._get(ctx)
        ctx.record("handoff_reveal", _target(handoff), channel=handoff.channel)
        return out(h.ContactOut, contact=handoff.address)

    async def stream(self, ctx: Ctx) -> web.StreamResponse:
        ctx.record("handoff_feed")
        self._seen(ctx)
        await ctx.db.commit()  # the stream may stay open for hours: give the connection back now
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(ctx.request)
        staff_id = ctx.me.id
        async with self.state.subscribe(FEED) as subscription:
            await response.write(b": ready\n\n")  # the console knows the stream is open
            while (event := await self._next(subscription)) is not None:
                if event:
                    chunk = f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"
                else:
                    chunk = ": ping\n\n"
                    await self._ping(staff_id)
                try:
                    await response.write(chunk.encode())
                except (ConnectionResetError, RuntimeError):  # the console went away
                    break
        await response.write_eof()
        return response

    async def _next(self, subscription: Subscription) -> dict[str, Any] | None:
        """The feed's next event; {} when it was quiet for PING_S; None when the gateway stops."""
        getter = asyncio.ensure_future(subscription.get(timeout=PING_S))
        stopping = asyncio.ensure_future(self._stopping.wait())
        done, pending = await asyncio.wait({getter, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if getter not in done:
            return None
        try:
            return getter.result()
        except TimeoutError:
            return {}

    async def end_streams(self, _app: web.Application) -> None:
        """On shutdown: an open stream would hold the server's graceful stop for minutes (the
        consoles' EventSource reconnects to whichever gateway answers next)."""
        self._stopping.set()

    # --- acting -------------------------------------------------------------------------------

    async def claim(self, ctx: Ctx) -> web.Response:
        handoff_id = ctx.id()
        if not await store.claim(ctx.db, handoff_id, ctx.me.id or 0):
            found = await ctx.db.get(Handoff, handoff_id)
            if found is None:
                raise not_found(f"没有编号为{handoff_id}的工单。")
            raise ApiError(409, "taken", "这个工单已被其他客服接走或已结束。")
        handoff = await self._get(ctx)
        await ctx.db.refresh(handoff)
        store.entry(ctx.db, handoff, "claim", ctx.me.id)
        ctx.record("handoff_claim", _target(handoff))
        self._seen(ctx)
        await ctx.db.commit()
        await self.delivery.announce("claimed", handoff, agent=ctx.me.id)
        return await self._envelope(ctx, handoff)

    async def reply(self, ctx: Ctx) -> web.Response:
        body: h.ReplyIn = ctx.body
        handoff = await self._mine(ctx)
        rows = await self.delivery.tell(ctx.db, handoff, body.text)
        for row in rows:
            store.entry(ctx.db, handoff, "reply", ctx.me.id, body.text, message_id=row.id)
        ctx.record("handoff_reply", _target(handoff), chars=len(body.text))
        self._seen(ctx)
        return await self._envelope(ctx, handoff)

    async def note(self, ctx: Ctx) -> web.Response:
        body: h.NoteIn = ctx.body
        handoff = await self._get(ctx)
        if handoff.status == "closed":
            raise ApiError(409, "closed", "工单已结束，不能再加备注。")
        store.entry(ctx.db, handoff, "note", ctx.me.id, body.text)
        ctx.record("handoff_note", _target(handoff))
        self._seen(ctx)
        return await self._envelope(ctx, handoff)

    async def transfer(self, ctx: Ctx) -> web.Response:
        body: h.TransferIn = ctx.body
        if (body.team is None) == (body.agent_id is None):
            raise ApiError(400, "invalid", "请只选一个：转给一个组（team）或一位同事（agent_id）。", field="team")
        handoff = await self._get(ctx)
        if handoff.status == "closed":
            raise ApiError(409, "closed", "工单已结束，不能转交。")
        if handoff.status == "claimed" and handoff.agent_id != ctx.me.id and ctx.me.role != "admin":
            raise ApiError(409, "not_yours", "这个工单由其他客服接待，只有他本人或主管能转交。")
        if body.team is not None:
            team = next((t for t in self.teams() if t.id == body.team), None)
            if team is None:
                raise ApiError(400, "invalid", f"没有编号为“{body.team}”的组。", field="team")
            handoff.team, handoff.status, handoff.agent_id, handoff.claimed_at = team.id, "waiting", None, None
            said = f"转给{team.name}组"
        else:
            colleague = await ctx.db.get(StaffUser, body.agent_id)
            if colleague is None or not colleague.active or colleague.role not in store.AGENT_ROLES:
                raise ApiError(400, "invalid", "这位同事不存在、已停用或不是客服。", field="agent_id")
            handoff.status, handoff.agent_id, handoff.claimed_at = "claimed", colleague.id, utcnow()
            said = f"转给{colleague.display_name}"
        ctx.db.add(handoff)
        store.entry(ctx.db, handoff, "transfer", ctx.me.id, said)
        ctx.record("handoff_transfer", _target(handoff), team=body.team, agent_id=body.agent_id)
        self._seen(ctx)
        await ctx.db.commit()
        await self.delivery.announce("waiting" if body.team else "claimed", handoff, agent=handoff.agent_id)
        return await self._envelope(ctx, handoff)

    async def close(self, ctx: Ctx) -> web.Response:
        body: h.CloseIn = ctx.body
        handoff = await self._mine(ctx)
        handoff.status, handoff.closed_at, handoff.awaiting_rating = "closed", utcnow(), True
        handoff.category, handoff.resolution = body.category, body.resolution
        ctx.db.add(handoff)
        store.entry(ctx.db, handoff, "close", ctx.me.id, f"{body.category}：{body.resolution}")
        ctx.record("handoff_close", _target(handoff), category=body.category)
        self._seen(ctx)
        await self.delivery.tell(ctx.db, handoff, CLOSED)  # commits the close with the message
        await self.delivery.announce("closed", handoff)
        return await self._envelope(ctx, handoff)

    # --- helpers ------------------------------------------------------------------------------

    def teams(self) -> list[h.TeamOut]:
        """Teams by service family (the catalogue's), and the general desk."""
        return [GENERAL, *(h.TeamOut(id=f.id, name=f.name) for f in catalogue().families)]

    async def _get(self, ctx: Ctx) -> Handoff:
        handoff = await ctx.db.get(Handoff, ctx.id())
        if handoff is None:
            raise not_found(f"没有编号为{ctx.id()}的工单。")
        return handoff

    async def _mine(self, ctx: Ctx) -> Handoff:
        """A ticket this agent is serving (a supervisor may act on anyone's)."""
        handoff = await self._get(ctx)
        if handoff.status == "waiting":
            raise ApiError(409, "not_claimed", "请先接单再回复或结束。")
        if handoff.status == "closed":
            raise ApiError(409, "closed", "工单已结束。居民再发消息会由机器人回答，需要时会重新排队。")
        if handoff.agent_id != ctx.me.id and ctx.me.role != "admin":
            raise ApiError(409, "not_yours", "这个工单由其他客服接待。")
        return handoff

    def _seen(self, ctx: Ctx) -> None:
        ctx.me.last_seen_at = utcnow()
        ctx.db.add(ctx.me)

    async def _ping(self, staff_id: int | None) -> None:
        async with self.sessions() as db:
            staff = await db.get(StaffUser, staff_id)
            if staff is not None:
                staff.last_seen_at = utcnow()
                db.add(staff)
                await db.commit()

    async def _names(self, db: AsyncSession, ids: set[int | None]) -> dict[int | None, str]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        rows = await db.exec(select(StaffUser.id, StaffUser.display_name).where(col(StaffUser.id).in_(wanted)))
        return dict(rows.all())

    async def _envelope(self, ctx: Ctx, handoff: Handoff) -> web.Response:
        await ctx.db.commit()
        await ctx.db.refresh(handoff)
        names = await self._names(ctx.db, {handoff.agent_id})
        return out(h.HandoffEnvelope, handoff=self._shown(handoff, names))

    def _shown(self, handoff: Handoff, names: dict[int | None, str]) -> h.HandoffOut:
        waiting_s = int((utcnow() - handoff.opened_at).total_seconds()) if handoff.status == "waiting" else 0
        amber, red = self.settings.handoff_sla_s
        sla = (
            "none"
            if handoff.status != "waiting"
            else "red"
            if waiting_s >= red
            else "amber"
            if waiting_s >= amber
            else "green"
        )
        wire = self.wires.get(handoff.channel)
        fields: dict[str, Any] = {
            **handoff.model_dump(),
            "number": handoff.number or "",
            "channel_label": wire.label if wire else handoff.channel,
            "contact": mask(handoff.address),
            "agent_name": names.get(handoff.agent_id),
            "waiting_s": waiting_s,
            "sla": sla,
        }
        return h.HandoffOut.model_validate(fields)


def _target(handoff: Handoff) -> str:
    return f"handoff:{handoff.id}"
