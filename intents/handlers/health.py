"""Hospital appointments: book against a half-day's capacity, cancel to give the place back."""

from __future__ import annotations

from datetime import date

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from gateway.db.models import AppointmentSlot, Booking, utcnow
from intents.availability import alternatives, appointment_slot
from intents.handlers.refs import new_ref
from intents.lookup import named
from intents.runtime import Answer, Context, button
from intents.services import Service


def _when(ctx: Context) -> str:
    day = date.fromisoformat(ctx.slot("date"))
    period = ctx.pack.appointment.period(ctx.slot("period"))
    return f"{day.month}月{day.day}日{period.name}（{period.start}-{period.end}）"


async def summary(service: Service, ctx: Context) -> str:
    return f"请确认挂号信息：{ctx.slot('hospital')} {ctx.slot('department')}，{_when(ctx)}。"


async def _take_place(db, slot_id: int) -> int | None:
    """Raise the count only while a place is left, in one statement: two citizens can never take
    the last place together, on SQLite or PostgreSQL. Returns the queue number, or None if full."""
    taken = await db.exec(
        update(AppointmentSlot)
        .where(col(AppointmentSlot.id) == slot_id, col(AppointmentSlot.booked) < col(AppointmentSlot.capacity))
        .values(booked=AppointmentSlot.booked + 1)
        .returning(AppointmentSlot.booked)
    )
    return taken.scalar()


async def book_appointment(service: Service, ctx: Context) -> Answer:
    slot = await appointment_slot(ctx, ctx.slot("date"), ctx.slot("period"))
    hospital = named(ctx.pack, "hospital", ctx.slot("hospital"))
    for _attempt in range(5):
        async with ctx.sessions() as db:
            number = await _take_place(db, slot.id)
            if number is None:
                await db.rollback()
                options = await alternatives(ctx, ctx.slot("date"), ctx.slot("period"))
                return Answer(f"抱歉，{_when(ctx)}的号刚刚被约满了。可以预约的时段：", options)
            booking = Booking(
                ref=new_ref("GH", ctx.now),
                service_id=service.id,
                citizen_id=ctx.citizen_id,
                conversation_id=ctx.conversation_id,
                slot_id=slot.id,
                details={
                    "hospital": hospital.name,
                    "department": ctx.slot("department"),
                    "date": ctx.slot("date"),
                    "period": ctx.slot("period"),
                    "queue_number": number,
                },
            )
            db.add(booking)
            try:
                await db.commit()
            except IntegrityError:  # the random reference was taken; the rollback returns the place
                await db.rollback()
                continue
        return Answer(
            f"挂号成功！预约号 {booking.ref}\n{hospital.name} {ctx.slot('department')}\n"
            f"{_when(ctx)}，就诊序号第{number}号\n地址：{hospital.address}\n"
            f"请携带身份证或医保卡按时就诊。如需取消，请发送“取消挂号 {booking.ref}”。",
            [button("取消这个预约", "hospital_appointment_cancel", booking_no=booking.ref)],
        )
    raise RuntimeError("no free booking reference after 5 attempts")


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
        await db.exec(
            update(AppointmentSlot)
            .where(col(AppointmentSlot.id) == booking.slot_id, col(AppointmentSlot.booked) > 0)
            .values(booked=AppointmentSlot.booked - 1)
        )
        await db.commit()
    d = booking.details
    return Answer(f"已为您取消预约 {ref}：{d['hospital']} {d['department']} {d['date']}。号源已释放。")
