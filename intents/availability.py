"""Reads of changing data that validation needs before anything is booked."""

from __future__ import annotations

from datetime import date

from sqlmodel import select

from intents.capacity import capacity_row
from intents.lookup import named
from intents.runtime import Answer, Context, button
from intents.store.models import AppointmentSlot, UtilityAccount

PERIOD_NAMES = {"am": "上午", "pm": "下午"}


async def appointment_slot(ctx: Context, day: str, period: str) -> AppointmentSlot:
    """The capacity row for the chosen hospital and department on that half-day, made on first use."""
    hospital = named(ctx.pack, "hospital", ctx.slot("hospital"))
    department = named(ctx.pack, "department", ctx.slot("department"))
    query = select(AppointmentSlot).where(
        AppointmentSlot.hospital_id == hospital.id,
        AppointmentSlot.department_id == department.id,
        AppointmentSlot.day == date.fromisoformat(day),
        AppointmentSlot.period == period,
    )
    return await capacity_row(
        ctx.sessions,
        query,
        lambda: AppointmentSlot(
            hospital_id=hospital.id,
            department_id=department.id,
            day=date.fromisoformat(day),
            period=period,
            capacity=ctx.pack.appointment.capacity_for(hospital.id, department.id, period),
        ),
    )


def _period_over(ctx: Context, day: str, period: str) -> bool:
    if date.fromisoformat(day) != ctx.today:
        return False
    end = ctx.pack.appointment.period(period).end
    return ctx.now.strftime("%H:%M") >= end


async def appointment_problem(ctx: Context, day: str, period: str) -> Answer | None:
    """Why this half-day cannot be booked (over or full), with bookable alternatives; None if it can."""
    if _period_over(ctx, day, period):
        return Answer(f"今天{PERIOD_NAMES[period]}的门诊已结束，请选择其他时段。", await alternatives(ctx, day, period))
    slot = await appointment_slot(ctx, day, period)
    if slot.booked >= slot.capacity:
        return Answer(
            f"{ctx.slot('hospital')}{ctx.slot('department')}{_label(day)}{PERIOD_NAMES[period]}的号已约满。"
            "可以预约的时段：",
            await alternatives(ctx, day, period),
        )
    return None


async def alternatives(ctx: Context, day: str, period: str, limit: int = 4) -> list[dict[str, str]]:
    from datetime import timedelta

    options = []
    for offset in range(ctx.pack.appointment.days_ahead + 1):
        candidate = (ctx.today + timedelta(days=offset)).isoformat()
        for p in ("am", "pm"):
            if (candidate, p) == (day, period) or _period_over(ctx, candidate, p):
                continue
            slot = await appointment_slot(ctx, candidate, p)
            if slot.booked < slot.capacity:
                options.append(
                    button(f"{_label(candidate)}{PERIOD_NAMES[p]}", "inform", date=candidate, period=PERIOD_NAMES[p])
                )
            if len(options) >= limit:
                return options
    return options


def _label(day: str) -> str:
    d = date.fromisoformat(day)
    return f"{d.month}月{d.day}日"


async def utility_account(ctx: Context, account_no: str) -> UtilityAccount | None:
    async with ctx.sessions() as db:
        return await db.get(UtilityAccount, account_no)
