"""Hospital appointments: book against a half-day's capacity, cancel to give the place back."""

from __future__ import annotations

from datetime import date

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from common.clock import utcnow
from common.database import saved_id
from intents import limits
from intents.availability import alternatives, appointment_slot
from intents.capacity import give_back, take
from intents.handlers.refs import insert_with_ref
from intents.limits import LimitReached
from intents.lookup import named
from intents.runtime import Answer, Context, button, cancel_offer
from intents.services import Service
from intents.store.models import AppointmentSlot, Booking


def _when(ctx: Context) -> str:
    day = date.fromisoformat(ctx.slot("date"))
    period = ctx.pack.appointment.period(ctx.slot("period"))
    return f"{day.month}月{day.day}日{period.name}（{period.start}-{period.end}）"


async def summary(service: Service, ctx: Context) -> str:
    return f"请确认挂号信息：{ctx.slot('hospital')} {ctx.slot('department')}，{_when(ctx)}。"


ONE_A_DAY = (
    "您已预约了{day}{hospital}{department}（预约号 {ref}），同一科室每天只能预约一次。"
    "如需改约，请先回复“取消挂号”取消原预约，再重新挂号。"
)


async def _take_place(db: AsyncSession, slot_id: int) -> int | None:
    """One place of a clinic half-day; the queue number, or None when it is full."""
    return await take(db, col(AppointmentSlot.booked), slot_id)


async def _take_own_place(db: AsyncSession, ctx: Context, slot: AppointmentSlot) -> int | None:
    """_take_place, and LimitReached when the citizen already holds this department on that day
    (counted under their lock)."""
    await limits.hold(db, ctx)
    same_day = (
        select(Booking)
        .join(AppointmentSlot, col(AppointmentSlot.id) == col(Booking.slot_id))
        .where(
            limits.mine(ctx, Booking),
            Booking.status == "confirmed",
            AppointmentSlot.hospital_id == slot.hospital_id,
            AppointmentSlot.department_id == slot.department_id,
            AppointmentSlot.day == slot.day,
        )
    )
    held = (await db.exec(same_day.order_by(col(Booking.id)))).all()
    if len(held) >= limits.APPOINTMENTS_PER_DEPARTMENT_DAY:
        d = held[0].details
        day = date.fromisoformat(d["date"])
        raise LimitReached(
            ONE_A_DAY.format(
                day=f"{day.month}月{day.day}日", hospital=d["hospital"], department=d["department"], ref=held[0].ref
            )
        )
    return await _take_place(db, saved_id(slot))


async def book_appointment(service: Service, ctx: Context) -> Answer:
    slot = await appointment_slot(ctx, ctx.slot("date"), ctx.slot("period"))
    hospital = named(ctx.pack, "hospital", ctx.slot("hospital"))
    try:
        booking = await _book(service, ctx, slot, hospital.name)
    except LimitReached as refused:
        return refused.answer
    if booking is None:
        options = await alternatives(ctx, ctx.slot("date"), ctx.slot("period"))
        return Answer(f"抱歉，{_when(ctx)}的号刚刚被约满了。可以预约的时段：", options)
    return Answer(
        f"挂号成功！预约号 {booking.ref}\n{hospital.name} {ctx.slot('department')}\n"
        f"{_when(ctx)}，就诊序号第{booking.details['queue_number']}号\n地址：{hospital.address}\n"
        f"请携带身份证或医保卡按时就诊。如需取消，请发送“取消挂号 {booking.ref}”。",
        [button("取消这个预约", "hospital_appointment_cancel", booking_no=booking.ref)],
    )


async def _book(service: Service, ctx: Context, slot: AppointmentSlot, hospital: str) -> Booking | None:
    return await insert_with_ref(
        ctx.sessions,
        "GH",
        ctx.now,
        lambda ref, number: Booking(
            ref=ref,
            service_id=service.id,
            citizen_id=ctx.citizen_id,
            holder=limits.holder(ctx),
            conversation_id=ctx.conversation_id,
            slot_id=slot.id,
            details={
                "hospital": hospital,
                "department": ctx.slot("department"),
                "date": ctx.slot("date"),
                "period": ctx.slot("period"),
                "queue_number": number,
            },
        ),
        take=lambda db: _take_own_place(db, ctx, slot),
    )


async def cancel_appointment(service: Service, ctx: Context) -> Answer:
    ref = ctx.slot("booking_no")
    async with ctx.sessions() as db:
        mine = select(Booking).where(
            Booking.citizen_id == ctx.citizen_id,
            Booking.service_id == "hospital_appointment",
            Booking.status == "confirmed",
        )
        if not ref:
            active = (await db.exec(mine.order_by(col(Booking.id)))).all()
            if not active:
                return Answer("您目前没有待就诊的挂号预约。")
            if len(active) == 1:
                b, d = active[0], active[0].details
                what = f"您有一个待就诊的挂号：{d['hospital']} {d['department']} {d['date'][5:]}"
                return cancel_offer(what, b.ref, service.intent, "booking_no")
            buttons = [
                button(
                    f"{b.details['hospital']} {b.details['department']} {b.details['date'][5:]}",
                    service.intent,
                    booking_no=b.ref,
                )
                for b in active
            ]
            return Answer("您有以下挂号预约，请选择要取消的一个：", buttons)
        booking = (await db.exec(mine.where(Booking.ref == ref))).first()
        if booking is None:
            return Answer(f"没有找到您名下待就诊的预约号 {ref}，请核对后重试。")
        booking.status, booking.cancelled_at = "cancelled", utcnow()
        db.add(booking)
        await give_back(db, col(AppointmentSlot.booked), booking.slot_id)
        await db.commit()
    d = booking.details
    return Answer(f"已为您取消预约 {ref}：{d['hospital']} {d['department']} {d['date']}。号源已释放。")
