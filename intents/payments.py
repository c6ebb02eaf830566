"""Paying through the payment provider: utility bills and held bookings (cinema tickets). An order per
attempt (one payable at a time per bill or booking), reused while it is valid, closed when it expired,
and settled only by the provider's verified notification, in one transaction and only once. Money that
came in for nothing (an order closed before the payment arrived, a booking already released, a bill paid
twice) goes back through the provider's refund, and so does a cancelled paid booking.

Expiry runs on the real clock, not the pinned demo clock (CITYGW_FIXED_NOW): the provider's is real."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from common.clock import utcnow
from intents.capacity import give_back
from intents.handlers.refs import new_ref, yuan
from intents.ports import Payments, PaymentUnavailable
from intents.runtime import now as local_now
from intents.runtime import pack
from intents.settings import get_settings
from intents.store.models import (
    AppointmentSlot,
    Booking,
    Payment,
    PaymentOrder,
    ResourceSlot,
    Screening,
    UtilityAccount,
)

log = logging.getLogger(__name__)

REUSE_MARGIN = timedelta(minutes=2)  # a link about to lapse is not handed out again
ACTIVE = ("held", "confirmed")  # bookings that hold their place


def aware(at: datetime) -> datetime:
    """SQLite gives times back without their zone; they were stored as UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def period_text(period: str) -> str:
    year, month = period.split("-")
    return f"{year}年{int(month)}月"


@dataclass(frozen=True)
class PayLink:
    code_url: str
    amount_fen: int
    expires_at: datetime  # aware UTC


@dataclass(frozen=True)
class Notice:
    """What a citizen is told about their order, on the conversation that asked; `key` names the event
    (one message per event, however often the provider repeats itself)."""

    key: str
    text: str
    conversation_id: str | None


@dataclass(frozen=True)
class Settled:
    """Paid by a verified notification and served: the bill cleared, or the held booking confirmed."""

    out_trade_no: str
    ref: str  # the Payment row's reference (bill) or the booking's
    amount_fen: int
    transaction_id: str
    notice: Notice
    detail: dict[str, Any] = field(default_factory=dict)  # for the audit log


@dataclass(frozen=True)
class Unserved:
    """Paid, with nothing to give for it: its refund is requested (send_refund asks the provider)."""

    out_trade_no: str
    reason: str


@dataclass(frozen=True)
class Released:
    """An unpaid order closed at the provider and here; its held booking (if any) gave its places back."""

    out_trade_no: str
    notice: Notice | None


Outcome = Settled | Unserved | Released


def _trade_no(prefix: str, now: datetime) -> str:
    return f"{prefix}{now:%Y%m%d%H%M%S}{secrets.token_hex(4).upper()}"  # 24 characters; WeChat Pay allows 6-32


async def _pending(db: AsyncSession, key: str) -> PaymentOrder | None:
    return (await db.exec(select(PaymentOrder).where(PaymentOrder.pending_key == key))).first()


async def _open(
    sessions: async_sessionmaker[AsyncSession],
    payments: Payments,
    key: str,
    make: Any,  # () -> PaymentOrder, pending under key
    description: str,
) -> PayLink | Settled:
    """The pending order's link while it is valid, else a new order's (an expired one is closed first).
    Settled when closing found it paid after all. PaymentUnavailable when the provider cannot open one."""
    for _attempt in range(3):
        async with sessions() as db:
            order = await _pending(db, key)
        if order is not None:
            if order.code_url and aware(order.expires_at) - REUSE_MARGIN > utcnow():
                return PayLink(order.code_url, order.amount_fen, aware(order.expires_at))
            outcome = await retire(sessions, payments, order)
            if isinstance(outcome, Settled):
                return outcome
            continue
        order = make()
        async with sessions() as db:
            db.add(order)
            try:
                await db.commit()
            except IntegrityError:  # another confirm made one just now: take that one
                await db.rollback()
                continue
            await db.refresh(order)
        try:
            code_url = await payments.open(order.out_trade_no, description, order.amount_fen, aware(order.expires_at))
        except PaymentUnavailable:
            await _mark_closed(sessions, order.out_trade_no)
            raise
        async with sessions() as db:
            await db.exec(update(PaymentOrder).where(col(PaymentOrder.id) == order.id).values(code_url=code_url))
            await db.commit()
        return PayLink(code_url, order.amount_fen, aware(order.expires_at))
    raise PaymentUnavailable("the pending order kept changing")


def expiry() -> datetime:
    return utcnow() + timedelta(minutes=get_settings().payment_ttl_min)


async def open_bill_order(
    sessions: async_sessionmaker[AsyncSession],
    payments: Payments,
    account: UtilityAccount,
    description: str,
    citizen_id: int | None,
    conversation_id: str | None,
) -> PayLink | Settled | None:
    """A link to pay the account's current bill; Settled when the pending order turned out paid; None
    when the bill is no longer due."""
    if account.amount_due_fen <= 0:
        return None
    key = f"{account.account_no}:{account.period}"

    def make() -> PaymentOrder:
        return PaymentOrder(
            out_trade_no=_trade_no("JF", utcnow()),
            account_no=account.account_no,
            period=account.period,
            amount_fen=account.amount_due_fen,
            citizen_id=citizen_id,
            conversation_id=conversation_id,
            pending_key=key,
            expires_at=expiry(),
        )

    return await _open(sessions, payments, key, make, description)


async def open_booking_order(
    sessions: async_sessionmaker[AsyncSession],
    payments: Payments,
    booking: Booking,
    expires_at: datetime,
    description: str,
) -> PayLink | Settled:
    """A link to pay a held booking, payable until the hold ends."""

    def make() -> PaymentOrder:
        return PaymentOrder(
            out_trade_no=_trade_no("DD", utcnow()),
            kind="booking",
            booking_id=booking.id,
            amount_fen=booking.amount_fen,
            citizen_id=booking.citizen_id,
            conversation_id=booking.conversation_id,
            pending_key=f"booking:{booking.id}",
            expires_at=expires_at,
        )

    return await _open(sessions, payments, f"booking:{booking.id}", make, description)


async def retire(sessions: async_sessionmaker[AsyncSession], payments: Payments, order: PaymentOrder) -> Outcome | None:
    """Close an expired (or unusable) pending order at the provider, then here, giving its held booking's
    places back. When the provider says it was paid (its notification lost or still on its way), it is
    settled instead: a paid order is never closed. PaymentUnavailable when the provider cannot tell."""
    closed = await payments.close(order.out_trade_no)
    if closed.paid:
        return await settle(sessions, order.out_trade_no, closed.transaction_id or "", closed.paid_at or utcnow())
    return await _release(sessions, order.out_trade_no)


async def _mark_closed(sessions: async_sessionmaker[AsyncSession], out_trade_no: str) -> None:
    async with sessions() as db:
        await db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.out_trade_no) == out_trade_no, col(PaymentOrder.status) == "pending")
            .values(status="closed", pending_key=None)
        )
        await db.commit()


def _counter(column: Any) -> InstrumentedAttribute:
    return column  # SQLModel types a mapped column as its value (int); at runtime it is the attribute


async def give_places_back(db: AsyncSession, booking: Booking) -> None:
    """The places a booking held, back to their half-day or screening (in the caller's transaction)."""
    if booking.screening_id is not None:
        await give_back(db, _counter(Screening.sold), booking.screening_id, booking.quantity)
    if booking.slot_id is not None:
        await give_back(db, _counter(AppointmentSlot.booked), booking.slot_id)
    if booking.resource_slot_id is not None:
        await give_back(db, _counter(ResourceSlot.booked), booking.resource_slot_id)


async def _release(sessions: async_sessionmaker[AsyncSession], out_trade_no: str) -> Released | None:
    async with sessions() as db:
        order = (await db.exec(select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no))).first()
        marked = await db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.out_trade_no) == out_trade_no, col(PaymentOrder.status) == "pending")
            .values(status="closed", pending_key=None)
        )
        if order is None or marked.rowcount != 1:
            await db.rollback()
            return None
        booking = await db.get(Booking, order.booking_id) if order.booking_id is not None else None
        notice = None
        if booking is not None and booking.status == "held":
            let_go = await db.exec(
                update(Booking)
                .where(col(Booking.id) == booking.id, col(Booking.status) == "held")
                .values(status="cancelled", cancelled_at=utcnow())
            )
            if let_go.rowcount == 1:
                await give_places_back(db, booking)
                notice = Notice(f"expired:{out_trade_no}", booking.details.get("on_expired", ""), order.conversation_id)
        await db.commit()
    return Released(out_trade_no, notice if notice and notice.text else None)


async def find_order(sessions: async_sessionmaker[AsyncSession], out_trade_no: str) -> PaymentOrder | None:
    async with sessions() as db:
        return (await db.exec(select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no))).first()


def _refund_no(out_trade_no: str) -> str:
    return f"TK{out_trade_no}"[:64]  # one refund per order: its own number, stable for retries


async def request_refund(db: AsyncSession, out_trade_no: str, reason: str) -> bool:
    """Mark a paid order's money to go back (in the caller's transaction); False when it already is."""
    marked = await db.exec(
        update(PaymentOrder)
        .where(
            col(PaymentOrder.out_trade_no) == out_trade_no,
            col(PaymentOrder.status) == "paid",
            col(PaymentOrder.refund_status).is_(None),
        )
        .values(out_refund_no=_refund_no(out_trade_no), refund_status="requested", refund_reason=reason[:80])
    )
    return marked.rowcount == 1


async def send_refund(sessions: async_sessionmaker[AsyncSession], payments: Payments, out_trade_no: str) -> bool:
    """Ask the provider for a requested refund (the same refund number every time, so asking again is
    safe); True once the provider accepted it. A refusal or an outage leaves it requested, for the
    periodic sweep to ask again."""
    order = await find_order(sessions, out_trade_no)
    if order is None or order.refund_status != "requested" or order.out_refund_no is None:
        return False
    try:
        status = await payments.refund(
            order.out_trade_no, order.out_refund_no, order.amount_fen, order.amount_fen, order.refund_reason or "退款"
        )
    except PaymentUnavailable as exc:
        log.warning("refund of order %s not accepted yet: %s", out_trade_no, exc)
        return False
    async with sessions() as db:
        await db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.out_trade_no) == out_trade_no, col(PaymentOrder.refund_status) == "requested")
            .values(refund_status="processing")
        )
        await db.commit()
    log.info("refund of order %s accepted (%s)", out_trade_no, status)
    return True


async def refund_arrived(
    sessions: async_sessionmaker[AsyncSession], out_refund_no: str, refund_fen: int, at: datetime
) -> Notice | None:
    """A verified refund notification: the refund is done, once. None for a repeat, an unknown refund,
    or an amount that is not the order's."""
    async with sessions() as db:
        order = (await db.exec(select(PaymentOrder).where(PaymentOrder.out_refund_no == out_refund_no))).first()
        if order is None or order.amount_fen != refund_fen:
            return None
        marked = await db.exec(
            update(PaymentOrder)
            .where(
                col(PaymentOrder.out_refund_no) == out_refund_no,
                col(PaymentOrder.refund_status).in_(("requested", "processing")),
            )
            .values(refund_status="success", refunded_at=at)
        )
        booking = await db.get(Booking, order.booking_id) if order.booking_id is not None else None
        await db.commit()
    if marked.rowcount != 1:
        return None
    what = f"订单 {booking.ref}" if booking is not None else f"支付单 {order.out_trade_no}"
    text = f"退款已到账：{what}的 {yuan(order.amount_fen)} 元已原路退回您的微信支付账户，请注意查收。"
    return Notice(f"refunded:{out_refund_no}", text, order.conversation_id)


async def settle(
    sessions: async_sessionmaker[AsyncSession], out_trade_no: str, transaction_id: str, paid_at: datetime
) -> Outcome | None:
    """Serve a pending order's payment, in one transaction: the order becomes paid, and the bill is
    cleared (with its Payment row, unique per account and period) or the held booking confirmed. An order
    that can no longer be served (closed, its booking released, its bill paid by another order) is
    recorded paid with its refund requested: Unserved. None for a repeat or an unknown order."""
    for _attempt in range(5):
        ref = new_ref("JF", local_now())
        async with sessions() as db:
            order = (await db.exec(select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no))).first()
            if order is None:
                return None
            marked = await db.exec(
                update(PaymentOrder)
                .where(col(PaymentOrder.out_trade_no) == out_trade_no, col(PaymentOrder.status) == "pending")
                .values(status="paid", pending_key=None, paid_at=paid_at, transaction_id=transaction_id)
            )
            if marked.rowcount != 1:
                await db.rollback()
                return await _paid_after_close(sessions, out_trade_no, transaction_id, paid_at)
            if order.kind == "booking":
                served = await _confirm_booking(db, order, transaction_id)
            else:
                served = await _clear_bill(db, order, ref, transaction_id)
            if served is None:
                await request_refund(db, out_trade_no, "订单已失效，退回款项")
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()
                if order.kind == "bill" and await _period_paid(sessions, order):
                    # Paid twice through two orders: the money is there, the bill is settled once.
                    log.error("payment order %s paid a bill already paid: refunding it", out_trade_no)
                    return await _paid_unserved(sessions, out_trade_no, ("pending",), transaction_id, paid_at)
                continue  # the reference was taken: draw another
        return served if served is not None else Unserved(out_trade_no, "booking released")
    raise RuntimeError("no free JF reference after 5 attempts")


async def _clear_bill(db: AsyncSession, order: PaymentOrder, ref: str, transaction_id: str) -> Settled:
    await db.exec(update(PaymentOrder).where(col(PaymentOrder.id) == order.id).values(payment_ref=ref))
    await db.exec(
        update(UtilityAccount)
        .where(
            col(UtilityAccount.account_no) == order.account_no,
            col(UtilityAccount.period) == order.period,
            col(UtilityAccount.amount_due_fen) > 0,
        )
        .values(amount_due_fen=0)
    )
    db.add(
        Payment(
            ref=ref,
            account_no=str(order.account_no),
            period=str(order.period),
            amount_fen=order.amount_fen,
            citizen_id=order.citizen_id,
        )
    )
    account = await db.get(UtilityAccount, order.account_no)
    kind = pack().utility_kind(account.kind).name if account is not None else ""
    period = period_text(str(order.period))
    text = (
        f"缴费成功！流水号 {ref}\n{kind}户号 {order.account_no} {period}"
        f"已缴 {yuan(order.amount_fen)} 元（微信支付单号 {transaction_id}），电子票据将发送至您的账户。"
    )
    detail = {"account_no": order.account_no, "period": order.period, "payment_ref": ref}
    return Settled(
        order.out_trade_no,
        ref,
        order.amount_fen,
        transaction_id,
        Notice(f"paid:{order.out_trade_no}", text, order.conversation_id),
        {**detail, "amount_fen": order.amount_fen, "transaction_id": transaction_id},
    )


async def _confirm_booking(db: AsyncSession, order: PaymentOrder, transaction_id: str) -> Settled | None:
    """The held booking confirmed; None when it is no longer held (its hold ended first)."""
    confirmed = await db.exec(
        update(Booking)
        .where(col(Booking.id) == order.booking_id, col(Booking.status) == "held")
        .values(status="confirmed")
    )
    booking = await db.get(Booking, order.booking_id)
    if confirmed.rowcount != 1 or booking is None:
        return None
    text = booking.details.get("on_paid") or f"支付成功！订单号 {booking.ref}"
    return Settled(
        order.out_trade_no,
        booking.ref,
        order.amount_fen,
        transaction_id,
        Notice(f"paid:{order.out_trade_no}", text, order.conversation_id),
        {"booking_ref": booking.ref, "amount_fen": order.amount_fen, "transaction_id": transaction_id},
    )


async def _paid_after_close(
    sessions: async_sessionmaker[AsyncSession], out_trade_no: str, transaction_id: str, paid_at: datetime
) -> Unserved | None:
    """A payment for an order closed here before it arrived (the citizen paid in its last moments): the
    money goes back. None when the order is already paid (a repeated notification)."""
    return await _paid_unserved(sessions, out_trade_no, ("closed",), transaction_id, paid_at)


async def _paid_unserved(
    sessions: async_sessionmaker[AsyncSession],
    out_trade_no: str,
    statuses: tuple[str, ...],
    transaction_id: str,
    paid_at: datetime,
) -> Unserved | None:
    """Paid, serving nothing (payment_ref empty), its refund requested."""
    async with sessions() as db:
        marked = await db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.out_trade_no) == out_trade_no, col(PaymentOrder.status).in_(statuses))
            .values(status="paid", pending_key=None, paid_at=paid_at, transaction_id=transaction_id)
        )
        if marked.rowcount != 1:
            await db.rollback()
            return None
        await request_refund(db, out_trade_no, "订单已关闭，退回款项")
        await db.commit()
    return Unserved(out_trade_no, f"paid while {statuses[0]}")


async def _period_paid(sessions: async_sessionmaker[AsyncSession], order: PaymentOrder) -> bool:
    async with sessions() as db:
        found = await db.exec(
            select(Payment.id).where(Payment.account_no == order.account_no, Payment.period == order.period)
        )
        return found.first() is not None


async def cancel_paid_booking(db: AsyncSession, booking: Booking) -> PaymentOrder | None:
    """In the caller's cancelling transaction: a paid booking's money is to go back. Its paid order
    (None when nothing was paid); the caller sends the refund (send_refund) after committing."""
    order = (
        await db.exec(select(PaymentOrder).where(PaymentOrder.booking_id == booking.id, PaymentOrder.status == "paid"))
    ).first()
    if order is None or not await request_refund(db, order.out_trade_no, "市民退票，退回款项"):
        return None
    return order


async def sweep(sessions: async_sessionmaker[AsyncSession], payments: Payments, batch: int = 50) -> list[Outcome]:
    """The periodic job: close orders whose time is up (each asked of the provider first, so a paid
    one is settled, not closed) and ask again for refunds the provider has not accepted yet. What it
    came to, for the caller to tell; an Unserved one's refund is the caller's to send."""
    async with sessions() as db:
        due = (
            await db.exec(
                select(PaymentOrder)
                .where(PaymentOrder.status == "pending", col(PaymentOrder.expires_at) <= utcnow())
                .order_by(col(PaymentOrder.expires_at))
                .limit(batch)
            )
        ).all()
        refunds = (
            await db.exec(
                select(PaymentOrder.out_trade_no)
                .where(PaymentOrder.status == "paid", PaymentOrder.refund_status == "requested")
                .limit(batch)
            )
        ).all()
    outcomes: list[Outcome] = []
    for order in due:
        try:
            outcome = await retire(sessions, payments, order)
        except PaymentUnavailable as exc:  # the provider cannot tell now: never close what may be paid
            log.warning("order %s not closed yet: %s", order.out_trade_no, exc)
            continue
        if outcome is not None:
            outcomes.append(outcome)
    for out_trade_no in refunds:
        await send_refund(sessions, payments, out_trade_no)
    return outcomes
