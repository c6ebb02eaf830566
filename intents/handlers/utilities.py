"""Utility bills: query by account number, pay the current period's amount once."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from intents.handlers.refs import insert_with_ref, new_ref, yuan
from intents.runtime import Answer, Context, button
from intents.services import Service
from intents.store.models import Payment, TopUp, UtilityAccount


async def _account(ctx: Context) -> UtilityAccount:
    async with ctx.sessions() as db:
        account = await db.get(UtilityAccount, ctx.slot("account_no"))
    if account is None:  # validated already; a vanished account is a data error
        raise LookupError(ctx.slot("account_no"))
    return account


def _period(period: str) -> str:
    year, month = period.split("-")
    return f"{year}年{int(month)}月"


async def bill_query(service: Service, ctx: Context) -> Answer:
    account = await _account(ctx)
    kind = ctx.pack.utility_kind(account.kind)
    # Anyone may pay a bill for someone else (代缴): the masked holder name, never the address.
    head = f"{kind.name}户号 {account.account_no}（户名：{account.holder}）"
    if account.amount_due_fen == 0:
        return Answer(f"{head}\n{_period(account.period)}账单已缴清，账户余额 {yuan(account.balance_fen)} 元。")
    return Answer(
        f"{head}\n{_period(account.period)}应缴 {yuan(account.amount_due_fen)} 元，账户余额 {yuan(account.balance_fen)} 元。"
        f"\n收费单位：{kind.provider}",
        [button("立即缴费", "bill_payment", utility_kind=kind.name, account_no=account.account_no)],
    )


async def summary(service: Service, ctx: Context) -> str:
    account = await _account(ctx)
    kind = ctx.pack.utility_kind(account.kind)
    if account.amount_due_fen == 0:
        return f"{kind.name}户号 {account.account_no}（{account.holder}）{_period(account.period)}已缴清，无需缴费。"
    return (
        f"请确认缴费：{kind.name}户号 {account.account_no}（户名：{account.holder}），"
        f"{_period(account.period)}应缴 {yuan(account.amount_due_fen)} 元。"
    )


async def pay_bill(service: Service, ctx: Context) -> Answer:
    """The payment row is unique per account and period, and the due amount is cleared in the same
    transaction only if still due: a repeated confirm (or a retried message) never pays twice."""
    account = await _account(ctx)
    kind = ctx.pack.utility_kind(account.kind)
    already = Answer(f"{kind.name}户号 {account.account_no} {_period(account.period)}账单已缴清，无需重复缴费。")
    async with ctx.sessions() as db:
        cleared = await db.exec(
            update(UtilityAccount)
            .where(col(UtilityAccount.account_no) == account.account_no, col(UtilityAccount.amount_due_fen) > 0)
            .values(amount_due_fen=0)
            .returning(UtilityAccount.period)
        )
        if cleared.scalar() is None:
            await db.rollback()
            return already
        payment = Payment(
            ref=new_ref("JF", ctx.now),
            account_no=account.account_no,
            period=account.period,
            amount_fen=account.amount_due_fen,
            citizen_id=ctx.citizen_id,
        )
        db.add(payment)
        try:
            await db.commit()
        except IntegrityError:
            await db.rollback()
            return already
    return Answer(
        f"缴费成功！流水号 {payment.ref}\n{kind.name}户号 {account.account_no} {_period(account.period)}"
        f"已缴 {yuan(payment.amount_fen)} 元，电子票据将发送至您的账户。"
    )


async def topup_summary(service: Service, ctx: Context) -> str:
    return f"请确认充值：手机号 {ctx.slot('phone_number')}，金额 {ctx.slot('amount')} 元。"


async def phone_topup(service: Service, ctx: Context) -> Answer:
    amount_fen = round(float(ctx.slot("amount")) * 100)
    topup = await insert_with_ref(
        ctx.sessions,
        "CZ",
        ctx.now,
        lambda ref, _taken: TopUp(
            ref=ref, phone=ctx.slot("phone_number"), amount_fen=amount_fen, citizen_id=ctx.citizen_id
        ),
    )
    return Answer(f"充值成功！流水号 {topup.ref}\n手机号 {topup.phone} 已充值 {yuan(amount_fen)} 元，通常1分钟内到账。")
