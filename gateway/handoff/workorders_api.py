"""The inbox's 12345 work orders under /api/staff/workorders: listed for agents and supervisors, moved
on (受理 → 转办 → 办理中 → 已办结) with what the citizen is told, each change audited and kept in the
order's history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlmodel import col, select

from common.clock import utcnow
from gateway.db.models import Application
from gateway.handoff import workorders as w
from gateway.handoff.api import AGENTS
from gateway.handoff.delivery import Delivery
from gateway.handoff.schemas import Text
from gateway.logs import mask
from gateway.staff.api import PREFIX, Ctx, out
from gateway.staff.errors import ApiError, not_found
from gateway.staff.openapi import Endpoint
from gateway.staff.schemas import Query, Strict
from gateway.wires import Wires

Status = Literal["受理", "转办", "办理中", "已办结"]


class WorkOrdersQuery(Query):
    status: Literal["open", "all", "受理", "转办", "办理中", "已办结"] = Field(
        default="open", description="open 未办结；all 全部；或一个状态"
    )
    limit: int = Field(default=50, ge=1, le=200)


class StatusIn(Strict):
    status: Status
    note: Text | None = Field(default=None, description="告诉居民的话（可选），随状态一起发送")
    team: Text | None = Field(default=None, description="转办给哪个单位（转办时填写）")


class WorkOrderOut(BaseModel):
    id: int
    ref: str
    service: str
    text: str
    status: str
    submitted_at: datetime
    status_at: datetime | None
    channel_label: str | None
    contact: str | None = Field(description="已打码")
    history: list[dict[str, Any]]


class WorkOrdersOut(BaseModel):
    workorders: list[WorkOrderOut]


class WorkOrderEnvelope(BaseModel):
    workorder: WorkOrderOut


class WorkOrderApi:
    def __init__(self, wires: Wires, delivery: Delivery) -> None:
        self.wires, self.delivery = wires, delivery

    def endpoints(self) -> list[Endpoint]:
        P = f"{PREFIX}/workorders"
        return [
            Endpoint(
                "GET",
                P,
                self.list_,
                "12345工单：投诉、建议与求助",
                AGENTS,
                query=WorkOrdersQuery,
                response=WorkOrdersOut,
            ),
            Endpoint(
                "POST",
                rf"{P}/{{id:\d+}}/status",
                self.move,
                "更新工单状态（受理、转办、办理中、已办结）并告知居民",
                AGENTS,
                body=StatusIn,
                response=WorkOrderEnvelope,
            ),
        ]

    async def list_(self, ctx: Ctx) -> web.Response:
        q: WorkOrdersQuery = ctx.query
        query = select(Application).where(col(Application.status).is_not(None))
        if q.status == "open":
            query = query.where(Application.status != w.FINISHED)
        elif q.status != "all":
            query = query.where(Application.status == q.status)
        rows = (await ctx.db.exec(query.order_by(col(Application.id).desc()).limit(q.limit))).all()
        return out(WorkOrdersOut, workorders=[await self._shown(ctx, a) for a in rows])

    async def move(self, ctx: Ctx) -> web.Response:
        body: StatusIn = ctx.body
        order = await ctx.db.get(Application, ctx.id())
        if order is None or order.status is None:
            raise not_found(f"没有编号为{ctx.id()}的工单。")
        if order.status == w.FINISHED:
            raise ApiError(409, "finished", "工单已办结，不能再改状态。")
        if w.STATUSES.index(body.status) <= w.STATUSES.index(order.status):
            raise ApiError(409, "backwards", f"工单已是“{order.status}”，状态只能往后推进。")
        if body.status == "转办" and not body.team:
            raise ApiError(400, "invalid", "转办须写明转给哪个单位（字段“team”）。", field="team")
        order.status, order.status_at = body.status, utcnow()
        step = {"status": body.status, "at": order.status_at.isoformat(), "staff": ctx.me.display_name}
        step.update({k: v for k, v in (("team", body.team), ("note", body.note)) if v})
        order.details = {**order.details, "history": [*order.details.get("history", []), step]}
        ctx.db.add(order)
        ctx.record("workorder_status", f"application:{order.id}", ref=order.ref, status=body.status, team=body.team)
        told = w.CHANGED.format(service=w.service_name(order.service_id), ref=order.ref, status=body.status)
        if body.team:
            told += w.TRANSFERRED.format(team=body.team)
        if body.note:
            told += body.note
        filer = await w.filer(ctx.db, order)
        if filer is not None:
            await self.delivery.tell(ctx.db, filer, told)  # commits the change with the message
        await ctx.db.commit()
        await ctx.db.refresh(order)
        return out(WorkOrderEnvelope, workorder=await self._shown(ctx, order))

    async def _shown(self, ctx: Ctx, order: Application) -> WorkOrderOut:
        filer = await w.filer(ctx.db, order)
        wire = self.wires.get(filer.channel) if filer else None
        return WorkOrderOut(
            id=order.id or 0,
            ref=order.ref,
            service=w.service_name(order.service_id),
            text=order.text,
            status=order.status or "",
            submitted_at=order.created_at,
            status_at=order.status_at,
            channel_label=wire.label if wire else None,
            contact=mask(filer.address) if filer else None,
            history=order.details.get("history", []),
        )
