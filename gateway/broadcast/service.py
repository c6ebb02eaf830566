"""The broadcast engine's service interface: what the staff API calls (see SPEC.md). Every function
takes the caller's AsyncSession and commits its own changes; sending happens in BroadcastRunner
(runner.py), which picks up what these functions leave scheduled or queued.

Status: pending_approval (emergency) → scheduled → sending → completed, or cancelled before that."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.sms.segments import segment_count
from gateway.broadcast import audience as audiences
from gateway.broadcast import render
from gateway.broadcast.errors import BroadcastError, forbidden, not_found
from gateway.broadcast.phones import parse_phone_list
from gateway.broadcast.quiet import quiet_now, to_utc, utc_now
from gateway.config import Settings
from gateway.db.engine import id_column, saved_id, select_rows
from gateway.db.models import Broadcast, BroadcastRecipient, StaffUser, Student, utcnow
from gateway.logs import mask
from gateway.wires import PHONE

__all__ = [
    "BroadcastError",
    "approve",
    "cancel",
    "create",
    "get",
    "list_",
    "parse_phone_list",
    "preview",
    "progress",
    "recipients",
    "remind",
    "retry_failed",
]

KINDS = ("emergency", "notice", "school")
MAX_BODY, MAX_TITLE, MAX_KEY = 500, 64, 64
CITY_ROLES = ("admin", "broadcaster")  # who sends emergencies and notices
APPROVERS = ("admin", "approver")
OPEN = ("draft", "pending_approval", "scheduled", "sending")  # not yet finished: may be cancelled
FAILED = ("failed", "undelivered")


# --- checks ---------------------------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise BroadcastError("bad_kind", "类型必须是紧急预警、通知或学校通知之一。")


def _check_text(title: str | None, body: str) -> tuple[str, str]:
    body = (body or "").strip() if isinstance(body, str) else ""
    if not body:
        raise BroadcastError("bad_body", "正文不能为空。")
    if len(body) > MAX_BODY:
        raise BroadcastError("bad_body", f"正文最多{MAX_BODY}字，现在有{len(body)}字。")
    if title is None:
        return "", body
    title = title.strip() if isinstance(title, str) else ""
    if not title:
        raise BroadcastError("bad_title", "标题不能为空。")
    if len(title) > MAX_TITLE:
        raise BroadcastError("bad_title", f"标题最多{MAX_TITLE}字，现在有{len(title)}字。")
    return title, body


def _school_for(staff: StaffUser, kind: str, school_id: str | None) -> str | None:
    """The school a sender may address: school staff only their own; admins any they name."""
    if kind != "school":
        if staff.role not in CITY_ROLES:
            raise forbidden("只有管理员和广播员可以发布预警和通知。")
        return None
    if staff.role == "school":
        if not staff.school_id or (school_id and school_id != staff.school_id):
            raise forbidden("只能给本校家长发通知。")
        return staff.school_id
    if staff.role == "admin":
        if not school_id:
            raise BroadcastError("unknown_school", "请指定学校。")
        return school_id
    raise forbidden("只有学校老师和管理员可以发学校通知。")


def _schedule(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise BroadcastError("bad_schedule", "发送时间格式不对，例如 2026-11-25T18:00。") from None
    return to_utc(value)


def _can_manage(staff: StaffUser, broadcast: Broadcast, roles: Collection[str] = CITY_ROLES) -> None:
    if staff.role in roles and staff.role != "school":
        return
    if staff.role == "school" and broadcast.kind == "school" and broadcast.school_id == staff.school_id:
        return
    raise forbidden()


# --- reading --------------------------------------------------------------------------------------


async def get(db: AsyncSession, broadcast_id: int) -> Broadcast:
    broadcast = await db.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise not_found()
    return broadcast


async def list_(
    db: AsyncSession, staff: StaffUser, kind: str | Collection[str] | None = None, limit: int = 50
) -> list[Broadcast]:
    """Newest first. School staff see only their school's notices."""
    query = select(Broadcast).order_by(col(Broadcast.id).desc()).limit(max(1, min(limit, 500)))
    if isinstance(kind, str):
        query = query.where(col(Broadcast.kind) == kind)
    elif kind:
        query = query.where(col(Broadcast.kind).in_(list(kind)))
    if staff.role == "school":
        query = query.where(col(Broadcast.kind) == "school", col(Broadcast.school_id) == staff.school_id)
    return list((await select_rows(db, query)).scalars().all())


async def progress(db: AsyncSession, broadcast_id: int) -> dict[str, int]:
    """Recipients per status ("failed" includes "undelivered") and how many acknowledged."""
    await get(db, broadcast_id)
    rows = (
        await select_rows(
            db,
            select(col(BroadcastRecipient.status), func.count(), func.count(col(BroadcastRecipient.acked_at)))
            .where(col(BroadcastRecipient.broadcast_id) == broadcast_id)
            .group_by(BroadcastRecipient.status),
        )
    ).all()
    out = {"total": 0, "queued": 0, "sent": 0, "delivered": 0, "failed": 0, "skipped": 0, "acked": 0}
    for status, n, acked in rows:
        key = "failed" if status in FAILED else status
        out[key] = out.get(key, 0) + n
        out["total"] += n
        out["acked"] += acked
    return out


async def recipients(
    db: AsyncSession, broadcast_id: int, status: str | None = None, offset: int = 0, limit: int = 50
) -> list[dict[str, Any]]:
    """One page of recipients, addresses masked. status: a recipient status ("failed" includes
    undelivered), or "acked" / "unacked" for school notices."""
    await get(db, broadcast_id)
    r = BroadcastRecipient
    query = (
        select(r, col(Student.name))
        .outerjoin(Student, col(Student.id) == col(r.student_id))
        .where(col(r.broadcast_id) == broadcast_id)
        .order_by(col(r.id))
        .offset(max(0, offset))
        .limit(max(1, min(limit, 500)))
    )
    if status == "acked":
        query = query.where(col(r.acked_at).is_not(None))
    elif status == "unacked":
        query = query.where(col(r.acked_at).is_(None), col(r.status) != "skipped")
    elif status == "failed":
        query = query.where(col(r.status).in_(FAILED))
    elif status:
        query = query.where(col(r.status) == status)
    return [_recipient(row, student) for row, student in (await select_rows(db, query)).all()]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _recipient(row: BroadcastRecipient, student: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "citizen_id": row.citizen_id,
        "channel": row.channel,
        "address": mask(row.address),
        "status": row.status,
        "error": row.error,
        "attempts": row.attempts,
        "student_id": row.student_id,
        "student_name": student,
        "acked_at": _iso(row.acked_at),
        "reminded_at": _iso(row.reminded_at),
        "updated_at": _iso(row.updated_at),
    }


# --- composing ------------------------------------------------------------------------------------


async def preview(
    db: AsyncSession,
    settings: Settings,
    kind: str,
    body: str,
    audience: object,
    school_id: str | None = None,
    *,
    title: str | None = None,
) -> dict[str, Any]:
    """Who would get it on which channel, the SMS text and its cost. Writes nothing. Pass the title
    (optional here) to count it in the SMS text as it will be sent."""
    _check_kind(kind)
    title, body = _check_text(title, body)
    spec = await audiences.validate(db, kind, audience, school_id)
    counts = await audiences.counts(db, spec, emergency=kind == "emergency")
    reached = {channel: counts[channel] for channel in audiences.REACHABLE}
    if sum(reached.values()) == 0:
        raise _nobody(counts)
    text = render.sms_text(settings, title, body, kind=kind)
    segments = segment_count(text)
    return {
        "recipients": {**reached, "total": sum(reached.values())},
        "excluded": {"opted_out": counts["opted_out"], "no_channel": counts["none"]},
        "segments": segments,
        "cost_yuan": round(counts[PHONE.name] * segments * settings.sms_price_yuan, 3),
        "quiet_hours": quiet_now(settings),
        "sms_text": text,
    }


def _nobody(counts: dict[str, int] | None = None) -> BroadcastError:
    why = "可能都已退订短信或没有联系方式"
    if counts and (counts["opted_out"] or counts["none"]):
        why = f"{counts['opted_out']}人已退订短信，{counts['none']}人没有手机号、微信或网页推送"
    return BroadcastError("empty_audience", f"这个范围内没有可以接收的居民（{why}）。")


async def _by_key(db: AsyncSession, key: str, staff: StaffUser) -> Broadcast | None:
    """The broadcast this staff member already made with this key. A key is its creator's: someone
    else's broadcast under the same key is never handed out (it could be another school's, or the
    city's emergency); the second creator is told to pick another key."""
    found = (await select_rows(db, select(Broadcast).where(col(Broadcast.idempotency_key) == key))).scalars().first()
    if found is not None and found.created_by != staff.id:
        raise BroadcastError("idempotency_key_taken", "这个 idempotency_key 已被使用，请换一个新的。", 409)
    return found


async def create(
    db: AsyncSession,
    settings: Settings,
    staff: StaffUser,
    *,
    kind: str,
    title: str,
    body: str,
    audience: object,
    scheduled_at: datetime | str | None = None,
    idempotency_key: str,
    school_id: str | None = None,
    urgent: bool = False,
) -> tuple[Broadcast, bool]:
    """A new broadcast, or the one already made with this idempotency_key (created False).
    Emergencies wait for a second person's approval; the rest are scheduled (now by default)."""
    key = (idempotency_key or "").strip() if isinstance(idempotency_key, str) else ""
    if not key or len(key) > MAX_KEY:
        raise BroadcastError("bad_key", f"缺少请求编号（idempotency_key，1到{MAX_KEY}个字符）。")
    if existing := await _by_key(db, key, staff):
        return existing, False
    _check_kind(kind)
    title, body = _check_text(title or "", body)
    school = _school_for(staff, kind, school_id)
    spec = await audiences.validate(db, kind, audience, school)
    when = _schedule(scheduled_at)
    emergency = kind == "emergency"
    if spec.type == "list":
        await audiences.ensure_citizens(db, spec.phones)
    if not await audiences.reachable(db, spec, emergency):
        await db.rollback()
        raise _nobody()
    broadcast = Broadcast(
        kind=kind,
        title=title,
        body=body,
        audience=spec.as_json(),
        school_id=school,
        urgent=bool(urgent) and kind == "school",
        status="pending_approval" if emergency else "scheduled",
        idempotency_key=key,
        created_by=saved_id(staff),
        scheduled_at=when if emergency else (when or utc_now(settings)),
    )
    db.add(broadcast)
    try:
        await db.commit()
    except IntegrityError:  # the same key committed by a concurrent request
        await db.rollback()
        if existing := await _by_key(db, key, staff):
            return existing, False
        raise
    return broadcast, True


# --- acting on one --------------------------------------------------------------------------------


async def approve(db: AsyncSession, staff: StaffUser, broadcast_id: int) -> Broadcast:
    """A second person (approver or admin, never the creator) releases an emergency. Without a
    scheduled time it goes at once (scheduled_at stays empty: "as soon as possible")."""
    if staff.role not in APPROVERS:
        raise forbidden("只有审核员或管理员可以批准预警。")
    result = await db.exec(
        update(Broadcast)
        .where(
            col(Broadcast.id) == broadcast_id,
            col(Broadcast.status) == "pending_approval",
            col(Broadcast.created_by) != staff.id,
        )
        .values(status="scheduled", approved_by=staff.id, approved_at=utcnow())
    )
    await db.commit()
    broadcast = await get(db, broadcast_id)
    await db.refresh(broadcast)
    if result.rowcount == 1:
        return broadcast
    if broadcast.status == "pending_approval" and broadcast.created_by == staff.id:
        raise BroadcastError("self_approval", "不能批准自己发起的预警，请另一位审核员批准。", 409)
    raise BroadcastError("not_pending", "这条广播不在待批准状态。", 409)


async def cancel(db: AsyncSession, staff: StaffUser, broadcast_id: int) -> Broadcast:
    """Stops a broadcast that has not finished: recipients still queued are marked skipped and the
    dispatcher drops their messages (should_send is false for a cancelled broadcast)."""
    broadcast = await get(db, broadcast_id)
    _can_manage(staff, broadcast)
    now = utcnow()
    result = await db.exec(
        update(Broadcast)
        .where(col(Broadcast.id) == broadcast_id, col(Broadcast.status).in_(OPEN))
        .values(status="cancelled", cancelled_at=now, finished_at=now)
    )
    if result.rowcount == 1:
        await db.exec(
            update(BroadcastRecipient)
            .where(col(BroadcastRecipient.broadcast_id) == broadcast_id, col(BroadcastRecipient.status) == "queued")
            .values(status="skipped", error="已取消", updated_at=now)
        )
    await db.commit()
    await db.refresh(broadcast)
    if result.rowcount == 1 or broadcast.status == "cancelled":
        return broadcast
    raise BroadcastError("finished", "这条广播已经发送完毕，无法取消。", 409)


async def retry_failed(db: AsyncSession, staff: StaffUser, broadcast_id: int) -> int:
    """Failed recipients back to queued, as one group; the runner enqueues them again."""
    broadcast = await get(db, broadcast_id)
    _can_manage(staff, broadcast)
    if broadcast.status == "cancelled":
        raise BroadcastError("cancelled", "这条广播已取消，不能重发。", 409)
    return await _requeue(db, broadcast_id, col(BroadcastRecipient.status).in_(FAILED), {"error": None})


async def remind(db: AsyncSession, settings: Settings, staff: StaffUser, broadcast_id: int) -> int:
    """A school notice again to every parent who has not acknowledged it (queued ones are on their way)."""
    broadcast = await get(db, broadcast_id)
    if broadcast.kind != "school":
        raise BroadcastError("not_school", "只有学校通知可以提醒家长确认。")
    _can_manage(staff, broadcast, roles=("admin",))
    if broadcast.status == "cancelled":
        raise BroadcastError("cancelled", "这条通知已取消，不能提醒。", 409)
    waiting = col(BroadcastRecipient.status).in_(("sent", "delivered", *FAILED))
    return await _requeue(db, broadcast_id, waiting, {"error": None, "reminded_at": utcnow()}, unacked_only=True)


async def _requeue(
    db: AsyncSession, broadcast_id: int, which: Any, values: dict[str, Any], unacked_only: bool = False
) -> int:
    """Set matching recipients queued again and move the broadcast's enqueue mark back below the
    first of them, so the runner enqueues them (and skips rows that are not queued)."""
    r = BroadcastRecipient
    now = utcnow()
    query = update(r).where(col(r.broadcast_id) == broadcast_id, which)
    if unacked_only:
        query = query.where(col(r.acked_at).is_(None))
    count = (await db.exec(query.values(status="queued", updated_at=now, **values))).rowcount
    if count:
        first = (
            await select_rows(
                db, select(func.min(id_column(r))).where(col(r.broadcast_id) == broadcast_id, col(r.status) == "queued")
            )
        ).scalar_one()
        await db.exec(
            update(Broadcast)
            .where(col(Broadcast.id) == broadcast_id)
            .values(
                enqueued_upto=case(
                    (col(Broadcast.enqueued_upto) < first - 1, col(Broadcast.enqueued_upto)), else_=first - 1
                ),
                status="sending",
                finished_at=None,
            )
        )
    await db.commit()
    return count
