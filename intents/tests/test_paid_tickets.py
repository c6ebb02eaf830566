"""Cinema tickets paid through the payment provider, and refunded when the citizen returns them, on the domain alone against a real database
(SQLite and PostgreSQL) and an in-memory provider (intents/tests/provider.py): a ticket is issued only
when its payment is settled, once however often the provider repeats itself; an unpaid hold expires and
gives its seats back (asked of the provider first, so a paid order is never closed); money that came in
for nothing is refunded, and the refund's arrival is told once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from intents import payments, ports
from intents.store.models import Booking, PaymentOrder, Screening
from intents.tests.provider import Provider
from intents.tests.test_limits import ask, sessions, tickets  # noqa: F401  # the database fixture, per backend


@pytest.fixture
def provider(monkeypatch) -> Provider:
    plugged = Provider()
    monkeypatch.setattr(ports.PORTS, "payments", plugged)
    return plugged


async def only_order(sessions) -> PaymentOrder:  # noqa: F811
    async with sessions() as db:
        return (await db.exec(select(PaymentOrder))).one()


async def booking(sessions, ref: str | None = None) -> Booking:  # noqa: F811
    async with sessions() as db:
        query = select(Booking).order_by(col(Booking.id))
        return (await db.exec(query.where(Booking.ref == ref) if ref else query)).all()[-1]


async def sold(sessions) -> int:  # noqa: F811
    async with sessions() as db:
        return sum(s.sold for s in (await db.exec(select(Screening))).all())


async def expire(sessions, out_trade_no: str) -> None:  # noqa: F811
    async with sessions() as db:
        await db.exec(
            update(PaymentOrder)
            .where(col(PaymentOrder.out_trade_no) == out_trade_no)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
        await db.commit()


async def test_a_ticket_is_held_with_a_pay_link_and_issued_only_when_paid(sessions, provider):  # noqa: F811
    answer = await tickets(sessions, 1, 2)
    assert "待支付" in answer.text and "weixin://wxpay/bizpayurl" in answer.text and "购票成功" not in answer.text
    held = await booking(sessions)
    assert held.status == "held" and await sold(sessions) == 2  # the seats are kept while it is paid
    order = await only_order(sessions)
    assert order.amount_fen == held.amount_fen > 0 and order.kind == "booking"

    transaction = provider.pay(order.out_trade_no)
    settled = await payments.settle(sessions, order.out_trade_no, transaction, datetime.now(UTC))
    assert isinstance(settled, payments.Settled)
    assert (
        settled.notice.text.startswith(f"购票成功！订单号 {held.ref}")
        and held.details["seats"][0] in settled.notice.text
    )
    assert (await booking(sessions)).status == "confirmed"
    # the provider repeats its notification: nothing more happens, nobody is told twice
    assert await payments.settle(sessions, order.out_trade_no, transaction, datetime.now(UTC)) is None
    assert (await booking(sessions)).status == "confirmed" and await sold(sessions) == 2


async def test_an_unpaid_hold_expires_and_its_seats_go_to_the_next_buyer(sessions, provider):  # noqa: F811
    await tickets(sessions, 1, 2)
    first = await booking(sessions)
    order = await only_order(sessions)
    await expire(sessions, order.out_trade_no)

    (released,) = await payments.sweep(sessions, provider)
    assert isinstance(released, payments.Released) and released.notice is not None
    assert "超时未支付" in released.notice.text and first.ref in released.notice.text
    assert provider.orders[order.out_trade_no].state == "CLOSED"  # closed at the provider: it cannot be paid
    assert (await booking(sessions, first.ref)).status == "cancelled" and await sold(sessions) == 0

    await tickets(sessions, 2, 2)  # someone else gets the same seats, and nobody else holds them
    assert (await booking(sessions)).details["seats"] == first.details["seats"]
    assert await payments.sweep(sessions, provider) == []  # nothing else is due


async def test_a_hold_paid_whose_notification_was_lost_is_issued_not_closed(sessions, provider):  # noqa: F811
    await tickets(sessions, 1, 3)
    order = await only_order(sessions)
    provider.pay(order.out_trade_no)  # paid; the notification never arrives
    await expire(sessions, order.out_trade_no)

    (settled,) = await payments.sweep(sessions, provider)
    assert isinstance(settled, payments.Settled) and "购票成功！" in settled.notice.text
    assert (await booking(sessions)).status == "confirmed" and await sold(sessions) == 3
    assert (await only_order(sessions)).status == "paid"


async def test_a_provider_that_cannot_answer_closes_nothing(sessions, provider):  # noqa: F811
    await tickets(sessions, 1, 1)
    order = await only_order(sessions)
    await expire(sessions, order.out_trade_no)
    provider.down = True
    assert await payments.sweep(sessions, provider) == []
    assert (await only_order(sessions)).status == "pending" and (await booking(sessions)).status == "held"


async def test_a_payment_after_the_order_closed_is_refunded_and_the_refund_told_once(sessions, provider):  # noqa: F811
    await tickets(sessions, 1, 2)
    order = await only_order(sessions)
    transaction = provider.pay(order.out_trade_no)  # paid in its last moment…
    await payments._release(sessions, order.out_trade_no)  # …while the sweep closed it here

    late = await payments.settle(sessions, order.out_trade_no, transaction, datetime.now(UTC))
    assert isinstance(late, payments.Unserved)
    assert (await booking(sessions)).status == "cancelled" and await sold(sessions) == 0  # no ticket for it
    assert await payments.send_refund(sessions, provider, order.out_trade_no)
    refunded = await only_order(sessions)
    assert refunded.refund_status == "processing" and provider.refunds == {
        refunded.out_refund_no: (order.out_trade_no, order.amount_fen)
    }
    assert await payments.settle(sessions, order.out_trade_no, transaction, datetime.now(UTC)) is None  # repeated

    arrived = await payments.refund_arrived(sessions, str(refunded.out_refund_no), order.amount_fen, datetime.now(UTC))
    assert arrived is not None and "退款已到账" in arrived.text and refunded.conversation_id == arrived.conversation_id
    again = await payments.refund_arrived(sessions, str(refunded.out_refund_no), order.amount_fen, datetime.now(UTC))
    assert again is None and (await only_order(sessions)).refund_status == "success"


async def test_a_refund_the_provider_did_not_take_is_asked_again_by_the_sweep(sessions, provider):  # noqa: F811
    await tickets(sessions, 1, 1)
    order = await only_order(sessions)
    transaction = provider.pay(order.out_trade_no)
    await payments._release(sessions, order.out_trade_no)
    await payments.settle(sessions, order.out_trade_no, transaction, datetime.now(UTC))
    provider.down = True
    assert not await payments.send_refund(sessions, provider, order.out_trade_no)
    assert (await only_order(sessions)).refund_status == "requested"
    provider.down = False
    await payments.sweep(sessions, provider)
    assert (await only_order(sessions)).refund_status == "processing" and len(provider.refunds) == 1


async def test_when_the_provider_cannot_open_the_order_no_seat_is_kept(sessions, provider):  # noqa: F811
    provider.down = True
    answer = await tickets(sessions, 1, 2)
    assert answer.refused and "在线支付暂时不可用" in answer.text and "未占座" in answer.text
    assert await sold(sessions) == 0 and (await booking(sessions)).status == "cancelled"


async def test_without_a_payment_provider_tickets_are_not_sold(sessions, monkeypatch):  # noqa: F811
    monkeypatch.setattr(ports.PORTS, "payments", None)
    answer = await tickets(sessions, 1, 2)
    assert answer.refused and "在线支付暂时不可用" in answer.text and await sold(sessions) == 0


async def paid_tickets(sessions, provider: Provider, citizen_id: int, count: int) -> Booking:  # noqa: F811
    await tickets(sessions, citizen_id, count)
    held = await booking(sessions)
    async with sessions() as db:
        order = (await db.exec(select(PaymentOrder).where(PaymentOrder.booking_id == held.id))).one()
    await payments.settle(sessions, order.out_trade_no, provider.pay(order.out_trade_no), datetime.now(UTC))
    return await booking(sessions, held.ref)


async def test_a_returned_ticket_gives_its_seats_back_and_its_money_is_refunded(sessions, provider):  # noqa: F811
    ticket = await paid_tickets(sessions, provider, 1, 2)
    offer = await ask(sessions, "movie_ticket_refund", 1)  # which one: the only one, offered
    assert offer.offer and ticket.ref in offer.text and "确认" in offer.text
    assert (await booking(sessions, ticket.ref)).status == "confirmed"

    answer = await ask(sessions, "movie_ticket_refund", 1, ref_no=ticket.ref)
    assert f"已为您退票 {ticket.ref}" in answer.text and "90.00 元将原路退回" in answer.text
    assert (await booking(sessions, ticket.ref)).status == "cancelled" and await sold(sessions) == 0
    order = await only_order(sessions)
    assert order.refund_status == "processing" and list(provider.refunds.values()) == [
        (order.out_trade_no, order.amount_fen)
    ]
    again = await ask(sessions, "movie_ticket_refund", 1, ref_no=ticket.ref)
    assert "没有找到" in again.text and len(provider.refunds) == 1  # returned once, refunded once


async def test_only_the_citizens_own_paid_ticket_can_be_returned(sessions, provider):  # noqa: F811
    ticket = await paid_tickets(sessions, provider, 1, 1)
    someone_else = await ask(sessions, "movie_ticket_refund", 2, ref_no=ticket.ref)
    assert "没有找到" in someone_else.text and (await booking(sessions, ticket.ref)).status == "confirmed"
    assert "没有可以退的电影票" in (await ask(sessions, "movie_ticket_refund", 2)).text
    await tickets(sessions, 3, 1)
    unpaid = await booking(sessions)
    answer = await ask(sessions, "movie_ticket_refund", 3, ref_no=unpaid.ref)
    assert "还没有支付" in answer.text and provider.refunds == {}


async def test_a_ticket_whose_showing_has_begun_is_not_refunded(sessions, provider):  # noqa: F811
    ticket = await paid_tickets(sessions, provider, 1, 1)
    async with sessions() as db:  # the showing was yesterday
        shown = await db.get(Booking, ticket.id)
        shown.details = {**shown.details, "date": "2026-11-24"}
        db.add(shown)
        await db.commit()
    answer = await ask(sessions, "movie_ticket_refund", 1, ref_no=ticket.ref)
    assert answer.refused and "已经开映" in answer.text
    assert (await booking(sessions, ticket.ref)).status == "confirmed" and provider.refunds == {}
