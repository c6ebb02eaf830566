"""A utility bill is paid only after a verified WeChat Pay notification (issue "Know who is asking",
finding 2), end to end: the owner texts the gateway, "确认" gets a pay link from the local WeChat Pay
server, the citizen pays there (its control endpoint), and the signed, encrypted notification settles
the bill once. Each test uses its own account: the stacks are shared by the session."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from gateway.db.models import AuditLog, Payment, PaymentOrder, UtilityAccount
from tests.test_sms_wechat import Phone

LINK = re.compile(r"weixin://wxpay/bizpayurl\?pr=[\w-]+")


async def ask_to_pay(phone: Phone, account_no: str) -> str:
    """The pay link the assistant answers "确认" with."""
    assert "请确认缴费" in await phone.say(f"交水费 {account_no}")
    text = await phone.say("确认")
    assert "待支付" in text and "未缴清" in text, text
    found = LINK.search(text)
    assert found, text
    return found.group(0)


def due(stack, account_no: str) -> int:
    with stack.db() as db:
        return db.get(UtilityAccount, account_no).amount_due_fen


def orders(stack, account_no: str) -> list[PaymentOrder]:
    with stack.db() as db:
        return list(
            db.exec(select(PaymentOrder).where(PaymentOrder.account_no == account_no).order_by(PaymentOrder.id))
        )


def payments(stack, account_no: str) -> list[Payment]:
    with stack.db() as db:
        return list(db.exec(select(Payment).where(Payment.account_no == account_no)))


async def control(http, stack, action: str, out_trade_no: str) -> tuple[int, dict]:
    async with http.post(f"{stack.wechatpay_url}/_control/{action}/{out_trade_no}") as response:
        return response.status, await response.json(content_type=None)


async def test_confirming_gives_a_pay_link_and_pays_nothing(http, stack):
    phone, account_no = Phone(http, stack), "1271354593"
    before = due(stack, account_no)
    link = await ask_to_pay(phone, account_no)
    assert due(stack, account_no) == before > 0
    assert payments(stack, account_no) == []
    assert await ask_to_pay(phone, account_no) == link  # asked again while valid: the same order
    assert [o.status for o in orders(stack, account_no)] == ["pending"]


async def test_paying_clears_the_bill_and_the_citizen_is_told(http, stack):
    phone, account_no = Phone(http, stack), "1995326202"
    amount = due(stack, account_no)
    await ask_to_pay(phone, account_no)
    (order,) = orders(stack, account_no)
    before = len(await phone.inbox())
    status, paid = await control(http, stack, "pay", order.out_trade_no)
    assert status == 200 and paid["notify_status"] in (200, 204)

    assert due(stack, account_no) == 0
    assert [p.amount_fen for p in payments(stack, account_no)] == [amount]
    told = (await phone.wait_for(before + 1))[-1]["body"]
    assert "缴费成功！" in told and payments(stack, account_no)[0].ref in told
    assert paid["order"]["transaction_id"] in told
    with stack.db() as db:
        audit = db.exec(select(AuditLog).where(AuditLog.target == f"paymentorder:{order.out_trade_no}")).all()
    assert [a.action for a in audit] == ["payment.settled"]
    again = await phone.say(f"交水费 {account_no}")
    assert "已缴清" in again and "确认" not in again  # says so and asks nothing


async def test_a_notification_with_a_bad_signature_is_refused_and_pays_nothing(http, stack):
    phone, account_no = Phone(http, stack), "1120208733"
    amount = due(stack, account_no)
    await ask_to_pay(phone, account_no)
    (order,) = orders(stack, account_no)
    status, forged = await control(http, stack, "forged-notify", order.out_trade_no)
    assert status == 200 and forged["notify_status"] == 401
    assert due(stack, account_no) == amount
    assert payments(stack, account_no) == []
    assert [o.status for o in orders(stack, account_no)] == ["pending"]


async def test_the_same_notification_twice_pays_once(http, stack):
    phone, account_no = Phone(http, stack), "1872911704"
    await ask_to_pay(phone, account_no)
    (order,) = orders(stack, account_no)
    before = len(await phone.inbox())
    assert (await control(http, stack, "pay", order.out_trade_no))[1]["notify_status"] in (200, 204)
    await phone.wait_for(before + 1)
    status, again = await control(http, stack, "renotify", order.out_trade_no)
    assert status == 200 and again["notify_status"] in (200, 204)  # acknowledged, so WeChat Pay stops
    assert len(payments(stack, account_no)) == 1
    with stack.db() as db:
        settled = db.exec(select(AuditLog).where(AuditLog.target == f"paymentorder:{order.out_trade_no}")).all()
    assert [a.action for a in settled] == ["payment.settled"]
    told = [m for m in await phone.inbox() if "缴费成功！" in m["body"]]
    assert len(told) == 1


async def test_an_expired_order_does_not_pay_and_the_citizen_gets_a_new_link(http, stack):
    phone, account_no = Phone(http, stack), "1700514684"
    amount = due(stack, account_no)
    first = await ask_to_pay(phone, account_no)
    (old,) = orders(stack, account_no)
    with stack.db() as db:  # its 30 minutes are over
        db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.id) == old.id)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        db.commit()
    second = await ask_to_pay(phone, account_no)
    assert second != first
    assert [o.status for o in orders(stack, account_no)] == ["closed", "pending"]
    status, refused = await control(http, stack, "pay", old.out_trade_no)
    assert (status, refused["code"]) == (409, "CLOSED")  # closed at WeChat Pay too: the citizen cannot pay it
    assert due(stack, account_no) == amount and payments(stack, account_no) == []


async def test_a_bill_already_paid_says_so_and_asks_nothing(http, stack):
    phone = Phone(http, stack)
    answer = await phone.say("交水费 1984427835")  # nothing due this period
    assert "已缴清" in answer and "确认" not in answer
    await phone.say("确认")  # a stray 确认 afterwards pays nothing either
    assert payments(stack, "1984427835") == []
