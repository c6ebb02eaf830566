"""The five headline services, as citizens use them: a Chinese conversation through the web chat
REST endpoint, the real Rasa server and action server, checked in the replies and in the database.
Every test runs twice: SQLite + in-memory state, and PostgreSQL + Redis."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from sqlmodel import select

from gateway.db.models import AppointmentSlot, Booking, Payment, PaymentOrder, QueueTicket, Screening, UtilityAccount
from intents.city.live import SimulatedBusFeed
from intents.city.pack import load_pack
from tests.conftest import Chat
from tests.stack import FIXED_NOW

PACK = load_pack()
NOW = datetime.fromisoformat(FIXED_NOW)
TOMORROW = (NOW.date() + timedelta(days=1)).isoformat()


def ref(text: str, prefix: str) -> str:
    match = re.search(rf"{prefix}\d{{10}}", text)
    assert match, f"no {prefix} reference in {text!r}"
    return match.group(0)


# --- buses ------------------------------------------------------------------------------------


async def test_bus_line_position_comes_from_the_live_feed(chat: Chat):
    vehicles = await SimulatedBusFeed(PACK, clock=lambda: NOW).vehicles("12")
    await chat.say("12路公交车到哪了")
    assert f"现有{len(vehicles)}辆车在运行" in chat.text
    for vehicle in vehicles[:2]:
        assert vehicle.vehicle_id in chat.text
        assert PACK.stop(vehicle.next_stop_id).name in chat.text


async def test_bus_arrival_at_a_stop_in_chinese_numerals(chat: Chat):
    line = PACK.line("12")
    stop = PACK.stop(line.stops[len(line.stops) // 2])
    arrivals = await SimulatedBusFeed(PACK, clock=lambda: NOW).arrivals("12", stop.id)
    await chat.say(f"十二路还有多久到{stop.name}")
    assert f"12路到{stop.name}站" in chat.text
    first = arrivals[0]
    assert ("已到站" if first.stops_away == 0 else f"约{first.minutes_until}分钟") in chat.text
    assert "分钟（已到站）" not in chat.text  # a bus at the stop is there, not "about N minutes" away


async def test_bus_question_without_a_line_asks_for_it(chat: Chat):
    await chat.say("公交车到哪了")
    assert "几路" in chat.text
    await chat.say("5路")
    assert "5路" in chat.text and "在运行" in chat.text


async def test_unknown_bus_line_is_refused_clearly(chat: Chat):
    await chat.say("999路到哪了")
    assert "没有999路" in chat.text


# --- hospital ---------------------------------------------------------------------------------


async def test_hospital_appointment_is_booked_and_cancelled(chat: Chat, stack):
    await chat.say("明天上午挂人民医院的号")
    assert "科室" in chat.text and any("心血管内科" == b["title"] for b in chat.buttons)
    await chat.say("心内科")
    assert "请确认" in chat.text and "克拉玛依市人民医院 心血管内科" in chat.text and "上午" in chat.text
    await chat.say("确认")
    assert "挂号成功" in chat.text
    booking_ref = ref(chat.text, "GH")
    with stack.db() as db:
        booking = db.exec(select(Booking).where(Booking.ref == booking_ref)).one()
        slot = db.get(AppointmentSlot, booking.slot_id)
        assert (booking.status, booking.details["date"], booking.details["period"]) == ("confirmed", TOMORROW, "am")
        assert (slot.hospital_id, slot.department_id, slot.booked) == ("renmin", "cardiology", 1)

    await chat.say(f"取消挂号 {booking_ref}")
    assert "已为您取消" in chat.text
    with stack.db() as db:
        booking = db.exec(select(Booking).where(Booking.ref == booking_ref)).one()
        assert booking.status == "cancelled"
        assert db.get(AppointmentSlot, booking.slot_id).booked == 0


async def test_cancelling_the_one_booking_asks_once_and_confirm_cancels_it(chat: Chat, stack):
    # "刚才那个号帮我退了" with one booking: no list of one to pick from; "确认" cancels, "不用了" keeps it
    await chat.say("明天上午挂人民医院心内科的号")
    await chat.say("确认")
    booking_ref = ref(chat.text, "GH")
    await chat.say("刚才那个号帮我退了吧")
    assert booking_ref in chat.text and "确认取消请回复“确认”" in chat.text
    await chat.say("不用了")
    assert "没有为您办理" in chat.text
    await chat.say("刚才那个号帮我退了吧")
    await chat.say("确认")
    assert "已为您取消" in chat.text and booking_ref in chat.text
    with stack.db() as db:
        assert db.exec(select(Booking).where(Booking.ref == booking_ref)).one().status == "cancelled"
    await chat.say("确认")  # nothing offered any more: nothing happens twice
    assert "已为您取消" not in chat.text


async def test_full_clinic_offers_other_times_and_books_nothing(http, stack):
    # 人民医院眼科 takes one patient per half-day in the demo data.
    first, second = Chat(http, stack), Chat(http, stack)
    await first.say("后天下午挂人民医院眼科")
    assert "请确认" in first.text
    await first.say("确认")
    assert "挂号成功" in first.text
    await second.say("后天下午挂人民医院眼科")
    assert "已约满" in second.text and second.buttons
    assert "请确认" not in second.text
    day = NOW.date() + timedelta(days=2)
    with stack.db() as db:
        slot = db.exec(
            select(AppointmentSlot).where(
                AppointmentSlot.hospital_id == "renmin",
                AppointmentSlot.department_id == "ophthalmology",
                AppointmentSlot.day == day,
                AppointmentSlot.period == "pm",
            )
        ).one()
        assert (slot.booked, slot.capacity) == (1, 1)


async def test_unknown_hospital_gets_suggestions(chat: Chat):
    await chat.say("我要挂号")
    assert "哪家医院" in chat.text
    await chat.say("人名医院")
    assert "您是不是要找" in chat.text and "克拉玛依市人民医院" in chat.text


async def test_leaving_a_form_books_nothing(chat: Chat, stack):
    await chat.say("我要预约挂号")
    await chat.say("算了")
    assert "已退出" in chat.text
    await chat.say("你能做什么")
    assert "项城市服务" in chat.text and "公交出行" in [b["title"] for b in chat.buttons]
    with stack.db() as db:
        assert db.exec(select(Booking).where(Booking.conversation_id == _conversation(stack, chat))).all() == []


def _conversation(stack, chat: Chat) -> str:
    from gateway.db.models import ChannelIdentity, Conversation

    with stack.db() as db:
        identity = db.exec(select(ChannelIdentity).where(ChannelIdentity.address == chat.session)).one()
        return db.exec(select(Conversation).where(Conversation.identity_id == identity.id)).one().id


# --- cinema -----------------------------------------------------------------------------------


async def test_movie_tickets_are_booked_with_seats(chat: Chat, stack):
    film = PACK.film("jiulongtan").title
    await chat.say(f"我想买两张{film}的电影票")
    assert "哪家影院" in chat.text
    await chat.press(chat.buttons[0]["title"])
    assert "哪一场" in chat.text
    show_time = chat.buttons[0]["title"]
    await chat.press(show_time)
    assert "请确认购票" in chat.text and "2张" in chat.text and show_time in chat.text
    await chat.say("确认")
    assert "已为您锁定座位，待支付" in chat.text and "购票成功" not in chat.text  # issued when paid
    order = ref(chat.text, "DY")
    with stack.db() as db:
        booking = db.exec(select(Booking).where(Booking.ref == order)).one()
        screening = db.get(Screening, booking.screening_id)
        assert booking.quantity == 2 and len(booking.details["seats"]) == 2
        assert booking.details["film"] == film and booking.details["time"] == show_time
        assert screening.day == NOW.date() and screening.sold >= 2
    for seat in booking.details["seats"]:
        assert seat in chat.text


async def test_showtimes_list_only_future_showings(chat: Chat):
    await chat.say("今天有什么电影")
    assert "正在上映" in chat.text
    await chat.press(chat.buttons[0]["title"])
    times = re.findall(r"\d{2}:\d{2}", chat.text)
    assert times and all(t > NOW.strftime("%H:%M") for t in times)


# --- utility bills ----------------------------------------------------------------------------


async def test_water_bill_query_and_single_payment(chat: Chat, stack, http):
    account = PACK.account("1023456789")
    with stack.db() as db:
        due = db.get(UtilityAccount, account.account_no).amount_due_fen
    assert due > 0
    await chat.say("查一下水费")
    assert "户号" in chat.text
    await chat.say(account.account_no)
    assert f"应缴 {due / 100:.2f} 元" in chat.text
    await chat.press("立即缴费")
    assert "请确认缴费" in chat.text
    await chat.say("确认")
    assert "待支付" in chat.text and "weixin://wxpay/bizpayurl" in chat.text  # a pay link, not a payment
    with stack.db() as db:
        assert db.get(UtilityAccount, account.account_no).amount_due_fen == due
        order = db.exec(select(PaymentOrder).where(PaymentOrder.account_no == account.account_no)).one()
    async with http.post(f"{stack.wechatpay_url}/_control/pay/{order.out_trade_no}") as response:
        assert response.status == 200  # the citizen pays; WeChat Pay notifies the gateway
    await chat.say(f"交水费 {account.account_no}")
    assert "已缴清" in chat.text
    with stack.db() as db:
        assert db.get(UtilityAccount, account.account_no).amount_due_fen == 0
        payments = db.exec(select(Payment).where(Payment.account_no == account.account_no)).all()
        assert [p.amount_fen for p in payments] == [due]


async def test_account_of_another_kind_is_refused(chat: Chat):
    await chat.say("查电费")
    await chat.say("1023456789")
    assert "水费户号" in chat.text and "不符" in chat.text


# --- bank queue -------------------------------------------------------------------------------


async def test_bank_queue_ticket_numbers_follow_each_other(http, stack):
    first, second = Chat(http, stack), Chat(http, stack)
    await first.say("在营业部取个号办个人业务")
    assert "请确认远程取号" in first.text and "前面约" in first.text  # the branch and wait, before a number
    await first.say("确认")
    await second.say("我要在昆仑银行克拉玛依分行营业部取号")
    assert "哪类业务" in second.text
    await second.say("存钱")  # as residents say it: 个人业务
    await second.say("确认")
    tickets = [re.search(r"号码是 (A\d{3})", c.text).group(1) for c in (first, second)]
    assert int(tickets[1][1:]) == int(tickets[0][1:]) + 1
    assert "前面还有" in second.text
    with stack.db() as db:
        rows = db.exec(select(QueueTicket).where(QueueTicket.ticket.in_(tickets))).all()
        assert {r.branch_id for r in rows} == {"yingyebu"} and {r.day for r in rows} == {
            date.fromisoformat(FIXED_NOW[:10])
        }


# --- the conversation around the services ------------------------------------------------------


async def test_help_lists_the_families_with_buttons(chat: Chat):
    await chat.say("你能做什么")
    titles = [b["title"] for b in chat.buttons]  # the families are the buttons (numbered lines on SMS)
    for family in ("公交出行", "医疗健康", "生活缴费", "金融服务", "文化娱乐"):
        assert family in titles
    assert len(chat.buttons) >= 5


async def test_out_of_scope_is_politely_declined(chat: Chat):
    await chat.say("帮我写一首关于秋天的诗")
    assert "暂时帮不上忙" in chat.text and chat.buttons
