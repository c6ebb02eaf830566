"""Cinema tickets are paid through WeChat Pay before they are issued (issue "Know who is asking", finding
2), end to end: a citizen texts the gateway for tickets, "确认" holds the seats and answers with a pay link
from the local WeChat Pay server, the citizen pays there (its control endpoint), and the signed, encrypted
notification issues the ticket once. An unpaid hold expires in the gateway's periodic sweep and gives its
seats back; a paid order whose notification was lost is issued by the sweep, not closed; money paid for
an order already closed goes back through WeChat Pay's refund, and the citizen is told when it arrives."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from gateway.db.models import AuditLog, Booking, PaymentOrder, Screening
from tests.stack import Stack
from tests.test_bill_payment import LINK, control
from tests.test_services import PACK
from tests.test_sms_wechat import Phone

FILM = PACK.film("jiulongtan").title


async def hold_tickets(phone: Phone) -> tuple[str, str]:
    """Two tickets asked for and confirmed: the booking's reference and the pay link."""
    text = await phone.say(f"我想买两张{FILM}的电影票")
    for _turn in range(4):
        if "请确认购票" in text:
            break
        assert "哪家影院" in text or "哪一场" in text, text
        text = await phone.say("1")  # the first cinema, then the first showing left today
    assert "请确认购票" in text and "2张" in text, text
    text = await phone.say("确认")
    assert "待支付" in text and "购票成功" not in text, text
    ref, link = re.search(r"DY\d{10}", text), LINK.search(text)
    assert ref and link, text
    return ref.group(0), link.group(0)


def booking(stack: Stack, ref: str) -> Booking:
    with stack.db() as db:
        return db.exec(select(Booking).where(Booking.ref == ref)).one()


def order_of(stack: Stack, ref: str) -> PaymentOrder:
    with stack.db() as db:
        return db.exec(select(PaymentOrder).where(PaymentOrder.booking_id == booking(stack, ref).id)).one()


def sold(stack: Stack, ref: str) -> int:
    with stack.db() as db:
        return db.get(Screening, booking(stack, ref).screening_id).sold


def expire(stack: Stack, out_trade_no: str) -> None:
    with stack.db() as db:
        db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.out_trade_no) == out_trade_no)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        db.commit()


async def told(phone: Phone, words: str, count: int = 1) -> list[str]:
    """The messages containing words, once at least count of them arrived (the sweep runs every 0.5 s)."""
    for _poll in range(100):
        found = [m["body"] for m in await phone.inbox() if words in m["body"]]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no message with {words!r}: {[m['body'] for m in await phone.inbox()]}")


async def test_a_ticket_is_issued_only_after_the_verified_payment_and_told_once(http, stack):
    phone = Phone(http, stack)
    ref, _link = await hold_tickets(phone)
    held = booking(stack, ref)
    assert held.status == "held" and held.amount_fen > 0
    order = order_of(stack, ref)
    status, forged = await control(http, stack, "forged-notify", order.out_trade_no)
    assert forged["notify_status"] == 401 and booking(stack, ref).status == "held"

    status, paid = await control(http, stack, "pay", order.out_trade_no)
    assert status == 200 and paid["notify_status"] in (200, 204)
    (issued,) = await told(phone, "购票成功！")
    assert ref in issued and held.details["seats"][0] in issued
    assert booking(stack, ref).status == "confirmed"
    again = await control(http, stack, "renotify", order.out_trade_no)
    assert again[1]["notify_status"] in (200, 204)  # acknowledged, so WeChat Pay stops
    assert len(await told(phone, "购票成功！")) == 1 and booking(stack, ref).status == "confirmed"
    with stack.db() as db:
        audit = db.exec(select(AuditLog).where(AuditLog.target == f"paymentorder:{order.out_trade_no}")).all()
    assert [a.action for a in audit] == ["payment.settled"]


async def test_an_unpaid_hold_expires_gives_its_seats_back_and_cannot_be_paid(http, stack):
    phone = Phone(http, stack)
    ref, _link = await hold_tickets(phone)
    before, order = sold(stack, ref), order_of(stack, ref)
    expire(stack, order.out_trade_no)
    (expired,) = await told(phone, "已自动取消")
    assert ref in expired and "座位已释放" in expired
    assert booking(stack, ref).status == "cancelled" and sold(stack, ref) == before - 2
    assert order_of(stack, ref).status == "closed"
    status, refused = await control(http, stack, "pay", order.out_trade_no)
    assert (status, refused["code"]) == (409, "CLOSED")  # closed at WeChat Pay too


async def test_a_paid_order_whose_notification_was_lost_is_issued_by_the_sweep(http, stack):
    phone = Phone(http, stack)
    ref, _link = await hold_tickets(phone)
    order = order_of(stack, ref)
    async with http.post(f"{stack.wechatpay_url}/_control/pay/{order.out_trade_no}", json={"notify": False}) as r:
        assert r.status == 200
    expire(stack, order.out_trade_no)  # the sweep asks WeChat Pay before closing: it was paid
    (issued,) = await told(phone, "购票成功！")
    assert ref in issued and booking(stack, ref).status == "confirmed" and order_of(stack, ref).status == "paid"


async def test_a_payment_for_a_closed_order_is_refunded_and_the_refund_told(http, stack):
    phone = Phone(http, stack)
    ref, _link = await hold_tickets(phone)
    order = order_of(stack, ref)
    with stack.db() as db:  # closed here a moment before the citizen's payment went through at WeChat Pay
        db.exec(update(PaymentOrder).where(col(PaymentOrder.id) == order.id).values(status="closed", pending_key=None))
        db.commit()
    status, paid = await control(http, stack, "pay", order.out_trade_no)
    assert status == 200 and paid["notify_status"] in (200, 204)
    (refunded,) = await told(phone, "退款已到账")
    assert ref in refunded
    async with http.get(f"{stack.wechatpay_url}/_control/refunds") as r:
        refunds = [x for x in (await r.json())["refunds"] if x["out_trade_no"] == order.out_trade_no]
    assert [(x["status"], x["amount"]["refund"]) for x in refunds] == [("SUCCESS", order.amount_fen)]
    assert order_of(stack, ref).refund_status == "success"
    assert booking(stack, ref).status != "confirmed" and not await told_any(phone, "购票成功！")


async def told_any(phone: Phone, words: str) -> bool:
    return any(words in m["body"] for m in await phone.inbox())


async def test_a_returned_ticket_is_refunded_and_the_refund_told(http, stack):
    phone = Phone(http, stack)
    ref, _link = await hold_tickets(phone)
    before, order = sold(stack, ref), order_of(stack, ref)
    await control(http, stack, "pay", order.out_trade_no)
    await told(phone, "购票成功！")
    offer = await phone.say("我要退电影票")
    assert ref in offer and "确认" in offer, offer
    returned = await phone.say("确认")
    assert f"已为您退票 {ref}" in returned and "原路退回" in returned, returned
    assert booking(stack, ref).status == "cancelled" and sold(stack, ref) == before - 2
    (arrived,) = await told(phone, "退款已到账")
    assert ref in arrived and order_of(stack, ref).refund_status == "success"
