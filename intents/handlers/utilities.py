"""Utility bills: query by account number; pay the current period's amount through the payment provider."""

from __future__ import annotations

from common.clock import utcnow
from intents import payments  # by module: intents.payments uses handlers.refs, this package's sibling
from intents.handlers.refs import insert_with_ref, yuan
from intents.ports import PORTS, PaymentUnavailable
from intents.runtime import Answer, Context, button
from intents.services import Service
from intents.store.models import TopUp, UtilityAccount


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


async def nothing_due(service: Service, ctx: Context) -> bool:
    """The account's bill is paid: there is nothing to confirm."""
    return (await _account(ctx)).amount_due_fen == 0


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
    """A pay link, not a payment: the bill is cleared only when the payment provider's verified
    notification settles the order (intents.payments.settle). A repeated confirm gets the same link."""
    account = await _account(ctx)
    kind = ctx.pack.utility_kind(account.kind)
    already = Answer(f"{kind.name}户号 {account.account_no} {_period(account.period)}账单已缴清，无需重复缴费。")
    if account.amount_due_fen == 0:
        return already
    unavailable = Answer(f"在线支付暂时不可用，请稍后再试。{kind.name}账单尚未缴费。", refused=True)
    if PORTS.payments is None:
        return unavailable
    description = f"{ctx.pack.city.name}{kind.name} {account.account_no} {_period(account.period)}"
    try:
        link = await payments.open_bill_order(
            ctx.sessions, PORTS.payments, account, description[:127], ctx.citizen_id, ctx.conversation_id
        )
    except PaymentUnavailable:
        return unavailable
    if not isinstance(link, payments.PayLink):
        return already
    minutes = max(1, round((link.expires_at - utcnow()).total_seconds() / 60))
    return Answer(
        f"待支付：{kind.name}户号 {account.account_no} {_period(account.period)}应缴 {yuan(link.amount_fen)} 元。\n"
        f"请在{minutes}分钟内用微信打开以下链接（或扫码）支付：\n{link.code_url}\n"
        "支付到账前账单仍未缴清；到账后会通知您缴费成功和流水号。"
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
