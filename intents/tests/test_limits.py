"""Fair shares per citizen, on the domain alone against a real database: one appointment per department
a day, six cinema tickets an order and a screening, three open applications of a service, two bookings
of a kind a day. What a citizen notices: the booking is refused with the reason and what to do, and two
requests at the same moment cannot both get past the count."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import MetaData, text
from sqlmodel import Session, select

from common.database import async_engine, session_factory, sync_engine
from intents import ports
from intents.handlers import run_service
from intents.runtime import Context, pack
from intents.services import catalogue
from intents.store import models
from intents.store.models import Booking, Screening
from intents.tests.provider import Provider

NOW = datetime(2026, 11, 25, 10, 0)
TOMORROW = "2026-11-26"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
DOMAIN_MODELS = [
    m
    for m in (
        models.District,
        models.Hospital,
        models.AppointmentSlot,
        models.Screening,
        models.ResourceSlot,
        models.Booking,
        models.Application,
        models.HolderLock,
        models.UtilityAccount,
        models.Payment,
        models.PaymentOrder,
    )
]


def _domain_schema() -> MetaData:
    """The domain's tables alone. The gateway, when loaded in the same process, adds foreign keys to its
    citizen table (gateway.db.models); the domain runs without it, and so do these tests."""
    schema = MetaData()
    for model in DOMAIN_MODELS:
        model.__table__.to_metadata(schema)
    for table in schema.tables.values():
        for fk in [fk for fk in table.foreign_keys if fk.target_fullname.split(".")[0] not in schema.tables]:
            fk.parent.foreign_keys.discard(fk)
            table.foreign_keys.discard(fk)
            table.constraints.discard(fk.constraint)
    return schema


def _database(kind: str, directory: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{directory / 'domain.db'}"
    name = f"citygw_limits_{uuid.uuid4().hex[:10]}"
    admin = sync_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def sessions(request, tmp_path) -> AsyncIterator:
    url = _database(request.param, tmp_path)
    engine = sync_engine(url)
    _domain_schema().create_all(engine)
    with Session(engine) as db:  # the hospitals' rows the clinic half-days point at
        db.add_all(models.District(id=d.id, name=d.name) for d in pack().districts)
        db.add_all(models.Hospital(id=h.id, name=h.name, district_id=h.district) for h in pack().hospitals)
        db.commit()
    engine.dispose()
    domain = async_engine(url)
    yield session_factory(domain)
    await domain.dispose()
    if request.param == "postgres":
        admin = sync_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()


def ask(sessions, service_id: str, citizen_id: int, phone: str | None = None, **slots: str):
    context = Context(
        slots=dict(slots),
        citizen_id=citizen_id,
        conversation_id=f"c{citizen_id}",
        text="",
        now=NOW,
        pack=pack(),
        sessions=sessions,
        service=catalogue().service(service_id),
        verified_phone=phone,
        channel="webchat",
    )
    return run_service(catalogue().service(service_id), context)


def appointment(sessions, citizen_id: int, period: str = "am", department: str = "心血管内科", **who):
    return ask(
        sessions,
        "hospital_appointment",
        citizen_id,
        hospital="克拉玛依市人民医院",
        department=department,
        date=TOMORROW,
        period=period,
        **who,
    )


@pytest.fixture
def provider(monkeypatch) -> Provider:
    """Tickets are held until paid (intents.payments): a provider to open their orders; held tickets count
    in the citizen's share as paid ones do."""
    plugged = Provider()
    monkeypatch.setattr(ports.PORTS, "payments", plugged)
    return plugged


SHOWING = pack().showings[0]
FILM, CINEMA = pack().film(SHOWING.film).title, pack().cinema(SHOWING.cinema).name


def tickets(sessions, citizen_id: int, count: int, **who):
    return ask(
        sessions,
        "movie_ticket_booking",
        citizen_id,
        film=FILM,
        cinema=CINEMA,
        show_time=SHOWING.times[0],
        date=TOMORROW,
        ticket_count=str(count),
        **who,
    )


async def test_a_second_appointment_in_the_same_department_and_day_is_refused_with_the_way_out(sessions):
    first = await appointment(sessions, 1, "am")
    assert "挂号成功" in first.text
    second = await appointment(sessions, 1, "pm")
    assert second.refused and "挂号成功" not in second.text
    assert "同一科室每天只能预约一次" in second.text and "取消挂号" in second.text
    assert "11月26日" in second.text and "心血管内科" in second.text
    assert "挂号成功" in (await appointment(sessions, 1, "pm", department="消化内科")).text
    assert "挂号成功" in (await appointment(sessions, 2, "pm")).text  # someone else


async def test_after_cancelling_the_citizen_may_book_that_department_again(sessions):
    first = await appointment(sessions, 1, "am")
    ref = first.text.split("预约号 ")[1].split("\n")[0]
    cancelled = await ask(sessions, "hospital_appointment_cancel", 1, booking_no=ref)
    assert "已为您取消" in cancelled.text
    assert "挂号成功" in (await appointment(sessions, 1, "pm")).text


async def test_the_proven_phone_is_one_citizen_across_channels(sessions):
    phone = "+8613912345678"
    assert "挂号成功" in (await appointment(sessions, 1, phone=phone)).text  # by SMS
    refused = await appointment(sessions, 2, "pm", phone=phone)  # the same phone bound in WeChat
    assert refused.refused and "同一科室每天只能预约一次" in refused.text


async def test_many_appointments_at_once_from_one_citizen_get_one_place(sessions):
    answers = await asyncio.gather(*(appointment(sessions, 1, period) for period in ["am", "pm"] * 4))
    assert sum("挂号成功" in a.text for a in answers) == 1
    assert sum("同一科室每天只能预约一次" in a.text for a in answers) == 7
    async with sessions() as db:
        assert len((await db.exec(select(Booking).where(Booking.citizen_id == 1))).all()) == 1


async def test_seven_tickets_in_one_order_are_refused_and_no_seat_is_taken(sessions, provider):
    answer = await tickets(sessions, 1, 7)
    assert answer.refused and "每笔订单最多购买6张" in answer.text and "待支付" not in answer.text
    async with sessions() as db:
        assert (await db.exec(select(Screening))).first() is None or all(
            s.sold == 0 for s in (await db.exec(select(Screening))).all()
        )


async def test_one_screening_sells_a_citizen_six_tickets_in_all(sessions, provider):
    assert "待支付" in (await tickets(sessions, 1, 4)).text
    more = await tickets(sessions, 1, 3)
    assert more.refused and "已购买4张" in more.text and "还可以再买2张" in more.text
    assert "待支付" in (await tickets(sessions, 1, 2)).text
    full = await tickets(sessions, 1, 1)
    assert full.refused and "买满6张" in full.text
    assert "待支付" in (await tickets(sessions, 2, 6)).text  # someone else
    async with sessions() as db:
        assert sum(s.sold for s in (await db.exec(select(Screening))).all()) == 12


async def test_three_orders_at_once_cannot_take_eighteen_seats(sessions, provider):
    answers = await asyncio.gather(*(tickets(sessions, 1, 6) for _ in range(3)))
    assert sum("待支付" in a.text for a in answers) == 1
    async with sessions() as db:
        assert sum(s.sold for s in (await db.exec(select(Screening))).all()) == 6


async def test_a_fourth_open_application_of_one_service_is_refused(sessions):
    def report(citizen_id: int):
        return ask(sessions, "bus_lost_and_found", citizen_id, bus_line="12路", phone_number="13912345678")

    for _ in range(3):
        assert "已受理" in (await report(1)).text
    fourth = await report(1)
    assert fourth.refused and "最多同时办理3件" in fourth.text and "查询进度" in fourth.text
    assert "已受理" in (await report(2)).text


async def test_a_third_booking_of_one_kind_on_one_day_is_refused(sessions):
    def vaccination(period: str):
        return ask(sessions, "vaccination_booking", 1, item="市疾控中心预防接种门诊", date=TOMORROW, period=period)

    assert "预约成功" in (await vaccination("am")).text
    assert "预约成功" in (await vaccination("pm")).text
    third = await vaccination("am")
    assert third.refused and "每人每天最多预约2个" in third.text and "取消预约" in third.text
