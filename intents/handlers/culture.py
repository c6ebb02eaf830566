"""Cinema: what is on where, and tickets for a showing with seats handed out in order. A priced ticket is
held (its seats taken) while the citizen pays through the payment provider and issued only by the
provider's verified notification (intents.payments); a hold not paid in time gives its seats back."""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from common.clock import utcnow
from common.database import saved_id
from intents import limits, lookup
from intents import payments as pay  # by module: intents.payments uses handlers.refs, this package's sibling
from intents.capacity import capacity_row, take
from intents.handlers.refs import insert_with_ref, yuan
from intents.limits import LimitReached
from intents.ports import PORTS, Payments, PaymentUnavailable
from intents.runtime import Answer, Context, button, cancel_offer
from intents.services import Service
from intents.store.models import Booking, Screening


def _day(ctx: Context) -> date:
    return ctx.day


def _day_label(day: date, ctx: Context) -> str:
    prefix = {0: "今天", 1: "明天", 2: "后天"}.get((day - ctx.today).days, "")
    return f"{prefix}{day.month}月{day.day}日"


async def showtimes(service: Service, ctx: Context) -> Answer:
    pack, day = ctx.pack, _day(ctx)
    film, cinema = ctx.slot("film"), ctx.slot("cinema")
    if not film and not cinema:
        lines = [f"{_day_label(day, ctx)}正在上映："]
        lines += [
            f"《{f.title}》{f.genre}，{f.minutes}分钟，{len(lookup.cinemas_showing(pack, f.title))}家影院"
            for f in pack.films
        ]
        buttons = [button(f"《{f.title}》场次", "movie_showtimes", film=f.title) for f in pack.films]
        return Answer("\n".join(lines), buttons)
    now = ctx.now.strftime("%H:%M")
    lines, buttons = [], []
    for showing in lookup.showings(pack, film, cinema):
        times = [t for t in showing.times if day > ctx.today or t > now]
        if not times:
            continue
        f, c = pack.film(showing.film), pack.cinema(showing.cinema)
        lines.append(f"《{f.title}》 {c.name}：{' '.join(times)}（{showing.price_yuan:g}元）")
        buttons.append(button(f"买票：{f.title} {c.name}", "movie_ticket_booking", film=f.title, cinema=c.name))
    what = "、".join(x for x in (f"《{film}》" if film else "", cinema or "") if x)
    if not lines:
        return Answer(f"{_day_label(day, ctx)}{what}没有可购票的场次了，可以问我明天的场次。")
    return Answer(f"{_day_label(day, ctx)}{what}的场次：\n" + "\n".join(lines), buttons[:10])


def _showing(ctx: Context):
    return lookup.showing_at(ctx.pack, ctx.slot("film"), ctx.slot("cinema"), ctx.slot("show_time"))


NO_SHOWING = "{cinema}没有{time}的《{film}》，请发送“{film}场次”查看可选场次后重新购票。"


def _no_showing(ctx: Context) -> str:
    return NO_SHOWING.format(cinema=ctx.slot("cinema"), time=ctx.slot("show_time"), film=ctx.slot("film"))


async def summary(service: Service, ctx: Context) -> str:
    showing, count = _showing(ctx), int(ctx.slot("ticket_count"))
    if showing is None:
        return _no_showing(ctx)
    hall = ctx.pack.hall(showing.hall)
    total = round(showing.price_yuan * 100) * count
    return (
        f"请确认购票：《{ctx.slot('film')}》 {ctx.slot('cinema')} {hall.name}，"
        f"{_day_label(_day(ctx), ctx)} {ctx.slot('show_time')}，{count}张，共{yuan(total)}元。"
    )


async def _screening(ctx: Context, showing, capacity: int) -> Screening:
    day, time = _day(ctx), ctx.slot("show_time")
    query = select(Screening).where(Screening.showing_id == showing.id, Screening.day == day, Screening.time == time)
    return await capacity_row(
        ctx.sessions, query, lambda: Screening(showing_id=showing.id, day=day, time=time, capacity=capacity)
    )


def _seat_names(numbers: list[int], per_row: int) -> list[str]:
    return [f"{i // per_row + 1}排{i % per_row + 1}座" for i in numbers]


async def _free_seats(db: AsyncSession, screening: Screening, count: int) -> list[int] | None:
    """The first free seat numbers of a screening (seats of held and confirmed tickets are taken; a
    released hold's seats are free again). Read after taking the count, in the same transaction: the
    screening's row is locked by then, so two sales never pick the same seats."""
    rows = await db.exec(
        select(Booking.details).where(col(Booking.screening_id) == screening.id, col(Booking.status).in_(pay.ACTIVE))
    )
    taken = {n for details in rows.all() for n in details.get("seat_numbers", [])}
    free = [n for n in range(screening.capacity) if n not in taken][:count]
    return free if len(free) == count else None


PER_ORDER = "每笔订单最多购买{limit}张票，您选了{count}张。请重新购票，张数不超过{limit}张。"
PER_SCREENING = (
    "每位市民同一场次最多购买{limit}张票，您已购买{held}张，还可以再买{left}张。"
    "如需更多座位，请让同行的人用自己的账号购票。"
)
PER_SCREENING_FULL = "每位市民同一场次最多购买{limit}张票，您已经买满{limit}张了，请选择其他场次。"
UNAVAILABLE = "在线支付暂时不可用，请稍后再试。本次未占座，也未扣款。"


async def _sell(db: AsyncSession, ctx: Context, screening: Screening, count: int) -> list[int] | None:
    """Seats of one screening (their numbers, or None when too few are left). Raises LimitReached when
    this citizen's tickets for it, held or paid, would pass the limit (counted under their lock)."""
    await limits.hold(db, ctx)
    mine = select(func.coalesce(func.sum(Booking.quantity), 0)).where(
        limits.mine(ctx, Booking), col(Booking.status).in_(pay.ACTIVE), col(Booking.screening_id) == screening.id
    )
    held = (await db.exec(mine)).one()
    if held + count > limits.TICKETS_PER_SCREENING:
        left = limits.TICKETS_PER_SCREENING - held
        words = PER_SCREENING if left > 0 else PER_SCREENING_FULL
        raise LimitReached(words.format(limit=limits.TICKETS_PER_SCREENING, held=held, left=left))
    if await take(db, col(Screening.sold), saved_id(screening), count) is None:
        return None
    return await _free_seats(db, screening, count)  # None only if sold and the tickets disagree: sell nothing


async def book_tickets(service: Service, ctx: Context) -> Answer:
    showing, count = _showing(ctx), int(ctx.slot("ticket_count"))
    if showing is None:
        return Answer(_no_showing(ctx))
    if count > limits.TICKETS_PER_ORDER:
        return Answer(PER_ORDER.format(limit=limits.TICKETS_PER_ORDER, count=count), refused=True)
    payments = PORTS.payments
    if payments is None:
        return Answer(UNAVAILABLE, refused=True)
    try:
        return await _book(service, ctx, showing, count, payments)
    except LimitReached as refused:
        return refused.answer


async def _book(service: Service, ctx: Context, showing, count: int, payments: Payments) -> Answer:
    hall = ctx.pack.hall(showing.hall)
    screening = await _screening(ctx, showing, hall.rows * hall.seats_per_row)
    total = round(showing.price_yuan * 100) * count
    when = f"{_day_label(_day(ctx), ctx)} {ctx.slot('show_time')}"
    numbers: list[int] = []  # the seats the sale picked, for the row it inserts

    async def sell(db: AsyncSession) -> int | None:
        taken = await _sell(db, ctx, screening, count)
        numbers[:] = taken or []
        return None if taken is None else len(taken)

    def ticket(ref: str, _sold: int | None) -> Booking:
        seats = "、".join(_seat_names(numbers, hall.seats_per_row))
        what = f"《{ctx.slot('film')}》 {ctx.slot('cinema')} {hall.name}\n{when}，座位：{seats}"
        return Booking(
            ref=ref,
            service_id=service.id,
            citizen_id=ctx.citizen_id,
            holder=limits.holder(ctx),
            conversation_id=ctx.conversation_id,
            status="held",
            screening_id=screening.id,
            quantity=count,
            amount_fen=total,
            details={
                "film": ctx.slot("film"),
                "cinema": ctx.slot("cinema"),
                "hall": hall.name,
                "date": _day(ctx).isoformat(),
                "time": ctx.slot("show_time"),
                "seats": _seat_names(numbers, hall.seats_per_row),
                "seat_numbers": list(numbers),
                "on_paid": f"购票成功！订单号 {ref}\n{what}\n已支付{yuan(total)}元。请凭订单号到影院自助机取票。",
                "on_expired": f"购票订单 {ref} 超时未支付，已自动取消，座位已释放。如仍想看，请重新购票。",
            },
        )

    booking = await insert_with_ref(ctx.sessions, "DY", ctx.now, ticket, take=sell)
    if booking is None:
        return Answer(f"抱歉，该场次剩余座位不足{count}张，请选择其他场次。")
    description = f"{ctx.pack.city.name}电影票 {ctx.slot('film')} {count}张"[:127]
    try:
        link = await pay.open_booking_order(ctx.sessions, payments, booking, pay.expiry(), description)
    except PaymentUnavailable:
        await _let_go(ctx, booking)
        return Answer(UNAVAILABLE, refused=True)
    if isinstance(link, pay.Settled):  # cannot happen for a new order; said plainly if it does
        return Answer(link.notice.text)
    minutes = max(1, round((link.expires_at - utcnow()).total_seconds() / 60))
    return Answer(
        f"已为您锁定座位，待支付：订单号 {booking.ref}\n《{ctx.slot('film')}》 {ctx.slot('cinema')} {hall.name}\n"
        f"{when}，座位：{'、'.join(booking.details['seats'])}\n共{yuan(total)}元。\n"
        f"请在{minutes}分钟内用微信打开以下链接（或扫码）支付：\n{link.code_url}\n"
        "支付成功后出票并通知您；超时未支付，座位自动释放。"
    )


async def _let_go(ctx: Context, booking: Booking) -> None:
    """A hold whose order could not be opened: its seats go back at once."""
    async with ctx.sessions() as db:
        held = await db.get(Booking, booking.id)
        if held is not None and held.status == "held":
            held.status, held.cancelled_at = "cancelled", utcnow()
            db.add(held)
            await pay.give_places_back(db, held)
            await db.commit()


# --- refunds --------------------------------------------------------------------------------------


def _ticket_line(booking: Booking) -> str:
    d = booking.details
    return f"《{d['film']}》 {d['cinema']} {d['date'][5:]} {d['time']}"


async def refund_tickets(service: Service, ctx: Context) -> Answer:
    """退票: a paid ticket before its showing is cancelled, its seats go back, and its money is refunded
    through the payment provider; the citizen is told again when the refund arrives."""
    ref = ctx.slot("ref_no")
    async with ctx.sessions() as db:
        mine = select(Booking).where(Booking.citizen_id == ctx.citizen_id, Booking.service_id == "movie_ticket_booking")
        if not ref:
            active = (await db.exec(mine.where(Booking.status == "confirmed").order_by(col(Booking.id)))).all()
            if not active:
                return Answer("您目前没有可以退的电影票。")
            if len(active) == 1:
                what = f"您有一笔电影票订单：{_ticket_line(active[0])}，{active[0].quantity}张"
                return cancel_offer(what, active[0].ref, service.intent, "ref_no", "订单号")
            buttons = [button(_ticket_line(b), service.intent, ref_no=b.ref) for b in active]
            return Answer("您有以下电影票订单，请选择要退的一笔：", buttons)
        booking = (await db.exec(mine.where(Booking.ref == ref))).first()
        if booking is None or booking.status == "cancelled":
            return Answer(f"没有找到您名下可退的电影票订单 {ref}，请核对订单号后重试。")
        if booking.status == "held":
            return Answer(f"订单 {ref} 还没有支付，无需退票；超时未支付会自动取消并释放座位。")
        d = booking.details
        if datetime.fromisoformat(f"{d['date']}T{d['time']}") <= ctx.now:
            return Answer(f"订单 {ref} 的场次已经开映，不能退票了。", refused=True)
        booking.status, booking.cancelled_at = "cancelled", utcnow()
        db.add(booking)
        await pay.give_places_back(db, booking)
        refund = await pay.cancel_paid_booking(db, booking)
        await db.commit()
    text = f"已为您退票 {ref}：{_ticket_line(booking)}，{booking.quantity}张，座位已释放。"
    if refund is None:
        return Answer(text)
    if PORTS.payments is not None:  # otherwise, and if the provider is down, the periodic sweep asks
        await pay.send_refund(ctx.sessions, PORTS.payments, refund.out_trade_no)
    return Answer(f"{text}\n票款 {yuan(refund.amount_fen)} 元将原路退回您的微信支付账户，到账后会通知您。")
