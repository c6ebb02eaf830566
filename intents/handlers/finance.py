"""Bank queue tickets: a number per branch, business type and day, with the people ahead."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from common.clock import utcnow
from intents.lookup import named
from intents.runtime import Answer, Context
from intents.services import Service
from intents.store.models import QueueTicket

RECENT_MINUTES = 30


async def _waiting(ctx: Context, branch_id: str, business_id: str, base: int) -> int:
    """People ahead: the branch's walk-in queue (from the data pack) plus the tickets this assistant
    issued for the same counter in the last half hour (older ones are assumed served)."""
    since = utcnow() - timedelta(minutes=RECENT_MINUTES)
    async with ctx.sessions() as db:
        recent = (
            await db.exec(
                select(func.count()).where(
                    QueueTicket.branch_id == branch_id,
                    QueueTicket.business_type == business_id,
                    QueueTicket.created_at >= since,
                )
            )
        ).one()
    return base + recent


def _closed(ctx: Context, branch) -> bool:
    opens, closes = branch.hours.split("-")
    return not opens <= ctx.now.strftime("%H:%M") < closes


async def branch_closed(service: Service, ctx: Context) -> bool:
    """A closed branch has no number to confirm: the ticket's answer says when it opens."""
    return _closed(ctx, named(ctx.pack, "bank_branch", ctx.slot("bank_branch")))


async def summary(service: Service, ctx: Context) -> str:
    branch = named(ctx.pack, "bank_branch", ctx.slot("bank_branch"))
    business = named(ctx.pack, "business_type", ctx.slot("business_type"))
    ahead = await _waiting(ctx, branch.id, business.id, branch.base_waiting)
    return f"请确认远程取号：{branch.name}，{business.name}\n地址：{branch.address}\n现在前面约{ahead}人等候。"


async def queue_ticket(service: Service, ctx: Context) -> Answer:
    branch = named(ctx.pack, "bank_branch", ctx.slot("bank_branch"))
    business = named(ctx.pack, "business_type", ctx.slot("business_type"))
    if _closed(ctx, branch):
        return Answer(f"{branch.name}的营业时间是{branch.hours}，现在不在营业时间，请在营业时间内取号。")
    ahead = await _waiting(ctx, branch.id, business.id, branch.base_waiting)
    today = ctx.today
    for _attempt in range(5):
        async with ctx.sessions() as db:
            issued = (
                await db.exec(
                    select(func.count()).where(
                        QueueTicket.branch_id == branch.id,
                        QueueTicket.business_type == business.id,
                        QueueTicket.day == today,
                    )
                )
            ).one()
            number = issued + 1
            ticket = QueueTicket(
                branch_id=branch.id,
                business_type=business.id,
                day=today,
                number=number,
                ticket=f"{business.prefix}{number:03d}",
                citizen_id=ctx.citizen_id,
            )
            db.add(ticket)
            try:
                await db.commit()
            except IntegrityError:  # someone took this number at the same moment: take the next
                await db.rollback()
                continue
        break
    else:
        raise RuntimeError("could not issue a queue number")
    wait = ahead * ctx.pack.minutes_per_customer // max(1, branch.counters)
    return Answer(
        f"取号成功！您的号码是 {ticket.ticket}（{business.name}）\n{branch.name}\n地址：{branch.address}\n"
        f"前面还有{ahead}人等候，预计等待约{wait}分钟。请留意叫号，过号需重新取号。"
    )


async def branch_info(service: Service, ctx: Context) -> Answer:
    branch = named(ctx.pack, "bank_branch", ctx.slot("bank_branch"))
    district = ctx.pack.district(branch.district).name
    return Answer(
        f"{branch.name}：地址：{branch.address}（{district}），营业时间：{branch.hours}，"
        f"开放窗口{branch.counters}个。\n需要排队取号可以直接说“在{branch.name}取号”。"
    )
