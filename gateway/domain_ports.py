"""The gateway's implementations of the domain's ports (intents.ports): a parent's school notices from
the broadcasts, the audit log, and payments through WeChat Pay (gateway.payments; off without a merchant
id). gateway/action_server.py plugs them in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.config import Settings
from gateway.db.engine import select_rows
from gateway.db.models import AuditLog, Broadcast, BroadcastRecipient, Guardian, School, Student
from gateway.payments import WeChatPayPayments, merchant_config
from intents import ports
from intents.ports import SchoolNotice
from payments.wechatpay import WeChatPayClient

SHOWN = ("sent", "delivered", "read", "undelivered", "failed")  # addressed to them; queued/skipped are not yet


class BroadcastSchoolNotices:
    """The school broadcasts a citizen was a recipient of."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def recent(self, citizen_id: int, since: datetime, limit: int) -> list[SchoolNotice]:
        sent_at = func.coalesce(BroadcastRecipient.updated_at, Broadcast.started_at, Broadcast.created_at)
        async with self.sessions() as db:
            rows = (
                await select_rows(
                    db,
                    core_select(
                        col(Broadcast.title),
                        sent_at,
                        col(BroadcastRecipient.acked_at),
                        col(Student.name),
                        col(School.name),
                    )
                    .join(Broadcast, col(Broadcast.id) == col(BroadcastRecipient.broadcast_id))
                    .outerjoin(Student, col(Student.id) == col(BroadcastRecipient.student_id))
                    .outerjoin(School, col(School.id) == col(Broadcast.school_id))
                    .where(
                        col(BroadcastRecipient.citizen_id) == citizen_id,
                        col(Broadcast.kind) == "school",
                        col(BroadcastRecipient.status).in_(SHOWN),
                        sent_at >= since,
                    )
                    .order_by(sent_at.desc(), col(BroadcastRecipient.id).desc())
                    .limit(limit),
                )
            ).all()
        return [
            SchoolNotice(title, at, acked_at is not None, student, school)
            for title, at, acked_at, student, school in rows
        ]

    async def is_guardian(self, citizen_id: int) -> bool:
        async with self.sessions() as db:
            return (await db.exec(select(Guardian.id).where(Guardian.citizen_id == citizen_id))).first() is not None


class AuditLogTrail:
    """Entries of the AuditLog table that are no staff member's doing (staff_id empty)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def record(self, action: str, target: str, detail: dict[str, Any]) -> None:
        async with self.sessions() as db:
            db.add(AuditLog(action=action, target=target, detail=detail))
            await db.commit()


def plug_into_domain(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    config = merchant_config(settings)
    payments = WeChatPayPayments(WeChatPayClient(config)) if config is not None else None
    ports.plug(school_notices=BroadcastSchoolNotices(sessions), audit=AuditLogTrail(sessions), payments=payments)
