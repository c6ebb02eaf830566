"""Paying a utility bill through the payment provider: an order per attempt (one payable at a time per
bill), reused while it is valid, closed when it expired, and settled only by the provider's verified
notification, in one transaction and only once.

Expiry runs on the real clock, not the pinned demo clock (CITYGW_FIXED_NOW): the provider's is real."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from common.clock import utcnow
from intents.handlers.refs import new_ref, yuan
from intents.ports import Payments, PaymentUnavailable
from intents.runtime import now as local_now
from intents.settings import get_settings
from intents.store.models import Payment, PaymentOrder, UtilityAccount

log = logging.getLogger(__name__)

REUSE_MARGIN = timedelta(minutes=2)  # a link about to lapse is not handed out again


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
class Settled:
    """A bill paid by a verified notification: what the citizen is told, and where."""

    out_trade_no: str
    payment_ref: str
    account_no: str
    period: str
    amount_fen: int
    transaction_id: str
    citizen_id: int | None
    conversation_id: str | None

    def text(self, kind_name: str) -> str:
        return (
            f"缴费成功！流水号 {self.payment_ref}\n{kind_name}户号 {self.account_no} {period_text(self.period)}"
            f"已缴 {yuan(self.amount_fen)} 元（微信支付单号 {self.transaction_id}），电子票据将发送至您的账户。"
        )


def _pending_key(account: UtilityAccount) -> str:
    return f"{account.account_no}:{account.period}"


def _trade_no(now: datetime) -> str:
    return f"JF{now:%Y%m%d%H%M%S}{secrets.token_hex(4).upper()}"  # 24 characters; WeChat Pay allows 6-32


async def _pending(db: AsyncSession, key: str) -> PaymentOrder | None:
    return (await db.exec(select(PaymentOrder).where(PaymentOrder.pending_key == key))).first()


async def open_bill_order(
    sessions: async_sessionmaker[AsyncSession],
    payments: Payments,
    account: UtilityAccount,
    description: str,
    citizen_id: int | None,
    conversation_id: str | None,
) -> PayLink | Settled | None:
    """A link to pay the account's current bill: the pending order's while it is valid, else a new one
    (an expired one is closed first). Settled when closing found it paid after all; None when the bill
    is no longer due. PaymentUnavailable when the provider cannot open an order."""
    key = _pending_key(account)
    for _attempt in range(3):
        async with sessions() as db:
            order = await _pending(db, key)
        if order is not None:
            if order.code_url and aware(order.expires_at) - REUSE_MARGIN > utcnow():
                return PayLink(order.code_url, order.amount_fen, aware(order.expires_at))
            if (settled := await retire(sessions, payments, order)) is not None:
                return settled
            continue
        now = utcnow()
        order = PaymentOrder(
            out_trade_no=_trade_no(now),
            account_no=account.account_no,
            period=account.period,
            amount_fen=account.amount_due_fen,
            citizen_id=citizen_id,
            conversation_id=conversation_id,
            pending_key=key,
            expires_at=now + timedelta(minutes=get_settings().payment_ttl_min),
        )
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


async def retire(sessions: async_sessionmaker[AsyncSession], payments: Payments, order: PaymentOrder) -> Settled | None:
    """Close an expired (or unusable) pending order at the provider, then here. When the provider says it
    was paid, it is settled instead (its notification may still be on its way)."""
    closed = await payments.close(order.out_trade_no)
    if closed.paid:
        return await settle(sessions, order.out_trade_no, closed.transaction_id or "", closed.paid_at or utcnow())
    await _mark_closed(sessions, order.out_trade_no)
    return None


async def _mark_closed(sessions: async_sessionmaker[AsyncSession], out_trade_no: str) -> None:
    async with sessions() as db:
        await db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.out_trade_no) == out_trade_no, col(PaymentOrder.status) == "pending")
            .values(status="closed", pending_key=None)
        )
        await db.commit()


async def find_order(sessions: async_sessionmaker[AsyncSession], out_trade_no: str) -> PaymentOrder | None:
    async with sessions() as db:
        return (await db.exec(select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no))).first()


async def settle(
    sessions: async_sessionmaker[AsyncSession], out_trade_no: str, transaction_id: str, paid_at: datetime
) -> Settled | None:
    """Pay the bill of a pending order, in one transaction: the order becomes paid, the bill is cleared
    and the Payment row written (unique per account and period). None when the order is not pending
    (already settled, closed, or unknown): a repeated notification changes nothing."""
    for _attempt in range(5):
        ref = new_ref("JF", local_now())
        async with sessions() as db:
            order = (await db.exec(select(PaymentOrder).where(PaymentOrder.out_trade_no == out_trade_no))).first()
            if order is None:
                return None
            marked = await db.exec(
                update(PaymentOrder)
                .where(col(PaymentOrder.out_trade_no) == out_trade_no, col(PaymentOrder.status) == "pending")
                .values(
                    status="paid", pending_key=None, paid_at=paid_at, transaction_id=transaction_id, payment_ref=ref
                )
            )
            if marked.rowcount != 1:
                await db.rollback()
                return None
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
                    account_no=order.account_no,
                    period=order.period,
                    amount_fen=order.amount_fen,
                    citizen_id=order.citizen_id,
                )
            )
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()
                if await _period_paid(sessions, order):
                    # Paid twice through two orders: the money is there, the bill is settled once.
                    log.error("payment order %s paid a bill already paid: refund it", out_trade_no)
                    await _mark_paid_twice(sessions, out_trade_no, transaction_id, paid_at)
                    return None
                continue  # the reference was taken: draw another
        return Settled(
            out_trade_no,
            ref,
            order.account_no,
            order.period,
            order.amount_fen,
            transaction_id,
            order.citizen_id,
            order.conversation_id,
        )
    raise RuntimeError("no free JF reference after 5 attempts")


async def _mark_paid_twice(
    sessions: async_sessionmaker[AsyncSession], out_trade_no: str, transaction_id: str, paid_at: datetime
) -> None:
    """Paid, with no Payment row of its own (payment_ref empty): the order to refund."""
    async with sessions() as db:
        await db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.out_trade_no) == out_trade_no, col(PaymentOrder.status) == "pending")
            .values(status="paid", pending_key=None, paid_at=paid_at, transaction_id=transaction_id)
        )
        await db.commit()


async def _period_paid(sessions: async_sessionmaker[AsyncSession], order: PaymentOrder) -> bool:
    async with sessions() as db:
        found = await db.exec(
            select(Payment.id).where(Payment.account_no == order.account_no, Payment.period == order.period)
        )
        return found.first() is not None
