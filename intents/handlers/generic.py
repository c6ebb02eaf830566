"""The generic handler kinds most services are made of: information from a table, lookups by an
identifier, bookings against capacity, applications with a status, and alert subscriptions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from common.clock import utcnow
from common.database import saved_id
from intents import limits
from intents.capacity import capacity_row, give_back, take
from intents.city.tables import Record
from intents.handlers.refs import insert_with_ref
from intents.limits import LimitReached
from intents.ports import PORTS, AuditTrail
from intents.runtime import Answer, Context, button, cancel_offer
from intents.services import Service, catalogue
from intents.store.models import Application, Booking, ResourceSlot, Subscription

LIST_LIMIT = 8
PERIODS = {"am": "上午", "pm": "下午"}
DEFAULT_CAPACITY = 20


def _details(record: Record) -> list[str]:
    return [f"{label}：{value}" for label, value in record.fields.items()]


def _record(ctx: Context) -> Record | None:
    name = ctx.slot("item")
    return next((r for r in ctx.table.records if name in r.names), None) if name else None


# --- information --------------------------------------------------------------------------------


async def info(service: Service, ctx: Context) -> Answer:
    notice = service.params.get("notice")
    answer = await _info(service, ctx)
    return Answer(f"{notice}\n{answer.text}", answer.buttons) if notice else answer


async def _info(service: Service, ctx: Context) -> Answer:
    table = ctx.table
    record = _record(ctx)
    if record is not None:
        return Answer("\n".join([f"【{record.name}】", *_details(record), f"信息来源：{table.source}"]))
    district = ctx.slot("district")
    records = table.records
    if district:
        district_id = next((d.id for d in ctx.pack.districts if d.name == district), None)
        records = [r for r in records if r.district in (None, district_id)]
    lines = [f"{service.name}："] + [f"{r.name}：{r.summary}" for r in records[:LIST_LIMIT]]
    lines.append(f"信息来源：{table.source}")
    return Answer("\n".join(lines), [button(r.name, service.intent, item=r.name) for r in records[:LIST_LIMIT]])


VERIFY_FIRST = (
    "为保护您的个人信息，“{service}”只向本人提供。请先发送“绑定+手机号”（如：绑定13912345678），"
    "回复短信验证码完成验证后再查询；用本人手机发短信查询则无需验证。"
)
# Personal records are shown only where their reads are audited: without an audit trail, none are.
NOT_AUDITED = "抱歉，“{service}”暂时无法查询，请稍后再试，或拨打12345政务服务热线。"


async def lookup(service: Service, ctx: Context) -> Answer:
    key_slot = service.params["key_slot"]
    key = ctx.slot(key_slot)
    not_found = Answer(f"没有查到{key}的{service.name}记录，请核对后重新输入。")
    if service.personal and not ctx.verified_phone:
        return Answer(VERIFY_FIRST.format(service=service.name), refused=True)
    audit = PORTS.audit
    if service.personal and audit is None:
        return Answer(NOT_AUDITED.format(service=service.name), refused=True)
    record = ctx.table.by_key(str(key))
    if record is None:
        return not_found
    if service.personal and audit is not None:
        await _record_read(audit, ctx, service, record, allowed=record.owner == ctx.verified_phone)
        if record.owner != ctx.verified_phone:
            return not_found  # someone else's record: the same words as none, so nothing is confirmed
    return Answer("\n".join([f"{record.name}（{service.name}）", *_details(record), f"信息来源：{ctx.table.source}"]))


async def _record_read(audit: AuditTrail, ctx: Context, service: Service, record: Record, allowed: bool) -> None:
    """Every read of a personal record, and every refused one, in the audit log admins see."""
    await audit.record(
        "citizen.personal_record" if allowed else "citizen.personal_record_refused",
        f"{service.params['table']}:{record.id}",
        {"citizen_id": ctx.citizen_id, "service": service.id, "channel": ctx.channel},
    )


# --- bookings ---------------------------------------------------------------------------------


def _when(ctx: Context) -> str:
    day = date.fromisoformat(ctx.slot("date"))
    return f"{day.month}月{day.day}日{PERIODS[ctx.slot('period')]}"


async def booking_summary(service: Service, ctx: Context) -> str:
    return f"请确认预约：{service.name}，{ctx.slot('item')}，{_when(ctx)}。"


async def _resource_slot(ctx: Context, service: Service, record: Record) -> ResourceSlot:
    day, period = date.fromisoformat(ctx.slot("date")), ctx.slot("period")
    query = select(ResourceSlot).where(
        ResourceSlot.service_id == service.id,
        ResourceSlot.place_id == record.id,
        ResourceSlot.day == day,
        ResourceSlot.period == period,
    )
    return await capacity_row(
        ctx.sessions,
        query,
        lambda: ResourceSlot(
            service_id=service.id,
            place_id=record.id,
            day=day,
            period=period,
            capacity=record.capacity or DEFAULT_CAPACITY,
        ),
    )


BOOKINGS_A_DAY = (
    "您{day}已有{count}个“{service}”预约（{refs}），每人每天最多预约{limit}个。"
    "如需换个时间或地点，请先回复“取消预约”取消其中一个。"
)


async def _take_resource(db: AsyncSession, ctx: Context, service: Service, slot: ResourceSlot) -> int | None:
    """One place of the slot (its number, or None when full). Raises LimitReached when the citizen
    already holds the day's share of this service (counted under their lock)."""
    await limits.hold(db, ctx)
    same_day = (
        select(Booking)
        .join(ResourceSlot, col(ResourceSlot.id) == col(Booking.resource_slot_id))
        .where(
            limits.mine(ctx, Booking),
            Booking.status == "confirmed",
            Booking.service_id == service.id,
            ResourceSlot.day == slot.day,
        )
    )
    held = (await db.exec(same_day.order_by(col(Booking.id)))).all()
    if len(held) >= limits.BOOKINGS_PER_SERVICE_DAY:
        day = f"{slot.day.month}月{slot.day.day}日"
        refs = "、".join(b.ref for b in held)
        raise LimitReached(
            BOOKINGS_A_DAY.format(
                day=day, count=len(held), service=service.name, refs=refs, limit=limits.BOOKINGS_PER_SERVICE_DAY
            )
        )
    return await take(db, col(ResourceSlot.booked), saved_id(slot))


async def booking(service: Service, ctx: Context) -> Answer:
    record = _record(ctx)
    if record is None:
        raise LookupError(ctx.slot("item"))
    slot = await _resource_slot(ctx, service, record)
    try:
        entry = await insert_with_ref(
            ctx.sessions,
            service.params.get("prefix", "YY"),
            ctx.now,
            lambda ref, number: Booking(
                ref=ref,
                service_id=service.id,
                citizen_id=ctx.citizen_id,
                holder=limits.holder(ctx),
                conversation_id=ctx.conversation_id,
                resource_slot_id=slot.id,
                details={
                    "place": record.name,
                    "date": ctx.slot("date"),
                    "period": ctx.slot("period"),
                    "number": number,
                },
            ),
            take=lambda db: _take_resource(db, ctx, service, slot),
        )
    except LimitReached as refused:
        return refused.answer
    if entry is None:
        return Answer(f"抱歉，{record.name}{_when(ctx)}已约满，请选择其他日期或时段。")
    lines = [
        f"预约成功！预约号 {entry.ref}",
        f"{service.name}：{record.name}",
        f"时间：{_when(ctx)}，第{entry.details['number']}号",
    ]
    return Answer("\n".join([*lines, *_details(record)]))


async def booking_cancel(service: Service, ctx: Context) -> Answer:
    services = service.params.get("services") or [s.id for s in catalogue().services if s.handler == "booking"]
    ref = ctx.slot("ref_no")
    async with ctx.sessions() as db:
        mine = select(Booking).where(
            Booking.citizen_id == ctx.citizen_id,
            col(Booking.service_id).in_(services),
            Booking.status == "confirmed",
        )
        if not ref:
            active = (await db.exec(mine.order_by(col(Booking.id)))).all()
            if not active:
                return Answer("您目前没有可以取消的预约。")
            if len(active) == 1:
                b = active[0]
                what = f"您有一个预约：{b.details['place']} {b.details['date'][5:]}"
                return cancel_offer(what, b.ref, service.intent, "ref_no")
            return Answer(
                "您有以下预约，请选择要取消的一个：",
                [button(f"{b.details['place']} {b.details['date'][5:]}", service.intent, ref_no=b.ref) for b in active],
            )
        entry = (await db.exec(mine.where(Booking.ref == ref))).first()
        if entry is None:
            return Answer(f"没有找到您名下的预约 {ref}，请核对后重试。")
        entry.status, entry.cancelled_at = "cancelled", utcnow()
        db.add(entry)
        await give_back(db, col(ResourceSlot.booked), entry.resource_slot_id)
        await db.commit()
    return Answer(f"已为您取消预约 {ref}（{entry.details['place']}）。")


# --- applications -------------------------------------------------------------------------------

STATUSES = [(1, "已提交"), (24, "已受理"), (72, "办理中")]  # hours since submission → status
CLOSED = "已办结"


WORK_ORDER_OPENED = "受理"  # a work order's first status; staff move it on (gateway/handoff/workorders.py)
WORK_ORDER_NOTE = "办理进度有变化会通知您，也可以随时发送“我的投诉进度”查询。"


def _status(submitted: datetime, now: datetime) -> str:
    hours = (now - submitted).total_seconds() / 3600
    return next((name for limit, name in STATUSES if hours < limit), CLOSED)


def current_status(found: Application, now: datetime) -> str:
    """A work order's status as staff set it; any other application's from its age."""
    return found.status or _status(datetime.fromisoformat(found.details["submitted_at"]), now)


async def application_summary(service: Service, ctx: Context) -> str:
    """What will be filed: the values the citizen gave (private ones masked), then their own words."""
    words = ctx.slot("request_text") or ctx.text
    lines = [f"请确认提交：{service.name}"]
    for name in service.slots:
        spec, value = catalogue().slots[name], ctx.slot(name)
        if value is not None and spec.label:
            lines.append(f"{spec.label}：{_masked(str(value)) if spec.private else value}")
    return "\n".join([*lines, f"内容：{words}"])


def _masked(value: str) -> str:
    """An ID or phone number in a summary: enough to recognise, not to copy."""
    return f"{value[:3]}{'*' * (len(value) - 7)}{value[-4:]}" if len(value) > 7 else value


OPEN_APPLICATIONS = (
    "您已有{count}件“{service}”正在办理（{refs}），每人同一事项最多同时办理{limit}件。"
    "请等其中一件办结后再提交；查询进度请发送“查询进度+受理编号”。"
)


async def _room_for_application(db: AsyncSession, ctx: Context, service: Service) -> int:
    """Raises LimitReached when the citizen has the most open applications of this service already
    (counted under their lock); open as the status the citizen is shown says."""
    await limits.hold(db, ctx)
    theirs = select(Application).where(limits.mine(ctx, Application), Application.service_id == service.id)
    open_ = [
        a for a in (await db.exec(theirs.order_by(col(Application.id)))).all() if current_status(a, ctx.now) != CLOSED
    ]
    if len(open_) >= limits.OPEN_APPLICATIONS_PER_SERVICE:
        refs = "、".join(a.ref for a in open_)
        raise LimitReached(
            OPEN_APPLICATIONS.format(
                count=len(open_), service=service.name, refs=refs, limit=limits.OPEN_APPLICATIONS_PER_SERVICE
            )
        )
    return len(open_)


async def application(service: Service, ctx: Context) -> Answer:
    words = ctx.slot("request_text") or ctx.text
    work_order = bool(service.params.get("work_order"))
    try:
        entry = await insert_with_ref(
            ctx.sessions,
            service.params.get("prefix", "SQ"),
            ctx.now,
            lambda ref, _taken: Application(
                ref=ref,
                service_id=service.id,
                citizen_id=ctx.citizen_id,
                holder=limits.holder(ctx),
                conversation_id=ctx.conversation_id,
                text=words,
                details={"submitted_at": ctx.now.isoformat(), **{s: ctx.slot(s) for s in service.slots}},
                status=WORK_ORDER_OPENED if work_order else None,
                status_at=utcnow() if work_order else None,
            ),
            take=lambda db: _room_for_application(db, ctx, service),
        )
    except LimitReached as refused:
        return refused.answer
    assert entry is not None  # the application's take never reports "full"
    lines = [f"已受理！受理编号 {entry.ref}", f"事项：{service.name}"]
    if work_order:  # before the materials: on SMS the end of a long answer waits behind "更多"
        lines.append(WORK_ORDER_NOTE)
    materials = next((r for r in ctx.table.records if r.id == "materials"), None) if "table" in service.params else None
    if materials is not None:
        lines += _details(materials)
    if not work_order:
        lines.append(f"查询进度请发送“查询进度 {entry.ref}”。")
    return Answer("\n".join(lines))


async def application_status(service: Service, ctx: Context) -> Answer:
    ref = ctx.slot("ref_no")
    async with ctx.sessions() as db:
        found = (await db.exec(select(Application).where(Application.ref == ref))).first()
        booked = None if found else (await db.exec(select(Booking).where(Booking.ref == ref))).first()
    if found is not None:
        name = _service_name(found.service_id)
        return Answer(f"受理编号 {ref}：{name}，当前状态：{current_status(found, ctx.now)}。")
    if booked is not None:
        status = {"cancelled": "已取消", "held": "待支付（超时未支付自动取消）"}.get(booked.status, "预约有效")
        return Answer(f"预约号 {ref}：{_service_name(booked.service_id)}，当前状态：{status}。")
    return Answer(f"没有找到编号 {ref} 的办件，请核对后重新输入。")


def _service_name(service_id: str) -> str:
    try:
        return catalogue().service(service_id).name
    except KeyError:
        return service_id


# --- subscriptions ------------------------------------------------------------------------------


async def subscription(service: Service, ctx: Context) -> Answer:
    topic, name = service.params["topic"], service.params.get("topic_name", service.name)
    if ctx.citizen_id is None:
        return Answer("请先通过短信或微信与我们建立联系后再订阅。")
    async with ctx.sessions() as db:
        current = (
            await db.exec(
                select(Subscription).where(Subscription.citizen_id == ctx.citizen_id, Subscription.topic == topic)
            )
        ).first()
        if service.params.get("action", "subscribe") == "unsubscribe":
            if current is None:
                return Answer(f"您目前没有订阅{name}，无需退订。")
            await db.exec(delete(Subscription).where(col(Subscription.id) == current.id))
            await db.commit()
            return Answer(f"已为您退订{name}，之后不再推送。")
        if current is not None:
            return Answer(f"您已订阅{name}，有预警时会第一时间通知您。")
        db.add(Subscription(citizen_id=ctx.citizen_id, topic=topic))
        try:
            await db.commit()
        except IntegrityError:  # the same request twice at once
            await db.rollback()
    return Answer(f"已为您订阅{name}，有预警时会第一时间通知您。回复“退订{name}”可取消。")
