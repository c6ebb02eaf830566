"""12345 work orders: a complaint, suggestion or request the citizen filed through the bot (an
application of a service marked `work_order` in the catalogue) is a ticket in the agents' inbox. Staff
move its status on (受理 → 转办 → 办理中 → 已办结); each change is told to the citizen on the channel
they filed it from, and "我的投诉进度" lists their work orders with where each stands."""

from __future__ import annotations

import re
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db import conversations
from gateway.db.models import Application
from gateway.outbound.telling import Conversant, conversant
from intents.handlers.generic import WORK_ORDER_OPENED
from intents.runtime import city_tz
from intents.services import catalogue

STATUSES = (WORK_ORDER_OPENED, "转办", "办理中", "已办结")
FINISHED = STATUSES[-1]
ASKS = re.compile(
    r"我的(投诉|建议|举报|工单|诉求)|(投诉|建议|举报|工单|诉求)的?(进度|进展|结果|办得|处理得?(怎么样|咋样|到哪|了没|完了))"
)
CHANGED = "您的{service}（受理编号{ref}）有新进展：{status}。"
TRANSFERRED = "已转给{team}办理。"
NONE = "没有查到您提交的投诉或建议。要投诉或提建议，直接把情况发过来，例如“我要投诉小区噪音扰民”。"
LISTED = "您提交的投诉和建议："
LINE = "{ref} {service}：{status}（{day}提交）"
SHOWN = 5  # the latest few: an SMS must stay short


def service_name(service_id: str) -> str:
    try:
        return catalogue().service(service_id).name
    except KeyError:
        return service_id


def asks_for_progress(text: str) -> bool:
    return bool(ASKS.search(text))


async def progress(db: AsyncSession, channel: str, address: str) -> str:
    """The citizen's latest work orders and their statuses, in their words."""
    identity = await conversations.find_identity(db, channel, address)
    if identity is None:
        return NONE
    rows = (
        await db.exec(
            select(Application)
            .where(Application.citizen_id == identity.citizen_id, col(Application.status).is_not(None))
            .order_by(col(Application.id).desc())
            .limit(SHOWN)
        )
    ).all()
    if not rows:
        return NONE
    lines = [
        LINE.format(ref=a.ref, service=service_name(a.service_id), status=a.status, day=_day(a.created_at))
        for a in rows
    ]
    return "\n".join([LISTED, *lines])


async def filer(db: AsyncSession, order: Application) -> Conversant | None:
    """The channel and address the work order was filed from (None when its conversation is gone)."""
    return await conversant(db, order.conversation_id)


def _day(value: datetime) -> str:
    local = value.astimezone(city_tz())
    return f"{local.month}月{local.day}日"
