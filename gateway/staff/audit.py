"""The audit trail: every staff action (who, what, on what, from where) as an AuditLog row."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import AuditLog, StaffUser

ACTIONS = (
    "login",
    "login_failed",
    "logout",
    "user_create",
    "user_disable",
    "broadcast_create",
    "broadcast_approve",
    "broadcast_cancel",
    "broadcast_retry",
    "notice_create",
    "notice_remind",
    "unanswered_assign",
    "unanswered_export",
    "handoff_feed",
    "handoff_view",
    "handoff_claim",
    "handoff_reply",
    "handoff_note",
    "handoff_transfer",
    "handoff_close",
    "handoff_reveal",
    "workorder_status",
)


def record(
    db: AsyncSession,
    action: str,
    *,
    staff_id: int | None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Add the row to db's transaction: it commits with the action it records (the caller commits)."""
    if action not in ACTIONS:  # a typo would make the trail unsearchable
        raise ValueError(f"unknown audit action {action!r}")
    row = AuditLog(staff_id=staff_id, action=action, target=target, detail=detail, ip=ip)
    db.add(row)
    return row


async def recent(db: AsyncSession, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Newest first, with the staff member's username."""
    rows = await db.exec(
        select(AuditLog, StaffUser.username)
        .join(StaffUser, col(StaffUser.id) == col(AuditLog.staff_id), isouter=True)
        .order_by(col(AuditLog.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return [
        {
            "id": row.id,
            "at": row.at,
            "staff_id": row.staff_id,
            "username": username,
            "action": row.action,
            "target": row.target,
            "detail": row.detail,
            "ip": row.ip,
        }
        for row, username in rows.all()
    ]
