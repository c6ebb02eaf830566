"""The `school_notices` kind: a parent's school notices of the last 30 days, with whether each was
acknowledged. The citizen is the conversation's (the gateway links a bound WeChat or phone to the
guardian's citizen), so the notices are the ones the broadcast engine addressed to that citizen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select

from gateway.db.models import Broadcast, BroadcastRecipient, Guardian, School, Student, utcnow
from intents.runtime import Answer, Context, city_tz
from intents.services import Service

WINDOW_DAYS = 30
LIMIT = 10
SHOWN = ("sent", "delivered", "read", "undelivered", "failed")  # addressed to them; queued/skipped are not yet
HOW_TO_BIND = "如需接收孩子学校的通知，请用学校登记的家长手机发短信，或在微信公众号发送“绑定 学号 学生姓名”，例如：绑定 KS2026030215 王小明。"
NONE = "您最近{days}天没有收到学校通知。"
HOW_TO_ACK = "回复“收到”确认最近一条未确认的通知。"


def _day(moment: datetime) -> str:
    local = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(city_tz())
    return f"{local.month}月{local.day}日"


async def school_notices(service: Service, ctx: Context) -> Answer:
    if ctx.citizen_id is None:  # a conversation that did not come through the gateway
        return Answer(NONE.format(days=WINDOW_DAYS) + HOW_TO_BIND)
    sent_at = func.coalesce(BroadcastRecipient.updated_at, Broadcast.started_at, Broadcast.created_at)
    async with ctx.sessions() as db:
        rows = (
            await db.exec(
                select(Broadcast.title, sent_at, BroadcastRecipient.acked_at, Student.name, School.name)
                .join(Broadcast, col(Broadcast.id) == col(BroadcastRecipient.broadcast_id))
                .outerjoin(Student, col(Student.id) == col(BroadcastRecipient.student_id))
                .outerjoin(School, col(School.id) == col(Broadcast.school_id))
                .where(
                    BroadcastRecipient.citizen_id == ctx.citizen_id,
                    Broadcast.kind == "school",
                    col(BroadcastRecipient.status).in_(SHOWN),
                    sent_at >= utcnow() - timedelta(days=WINDOW_DAYS),
                )
                .order_by(sent_at.desc(), col(BroadcastRecipient.id).desc())
                .limit(LIMIT)
            )
        ).all()
        guardian = rows or (await db.exec(select(Guardian.id).where(Guardian.citizen_id == ctx.citizen_id))).first()
    if not rows:
        return Answer(NONE.format(days=WINDOW_DAYS) + ("" if guardian else HOW_TO_BIND))
    lines = [f"最近{WINDOW_DAYS}天的学校通知："]
    for title, at, acked_at, student, school in rows:
        about = "，".join(x for x in (school, student) if x)
        state = "已确认" if acked_at else "未确认"
        lines.append(f"{_day(at)}《{title}》{f'（{about}）' if about else ''}{state}")
    if any(acked_at is None for _, _, acked_at, _, _ in rows):
        lines.append(HOW_TO_ACK)
    return Answer("\n".join(lines))
