"""The schema, the demo data and the booking arithmetic, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import Session, SQLModel, select

from gateway.db.engine import async_engine, session_factory, sync_engine
from gateway.db.models import AppointmentSlot, UtilityAccount
from gateway.db.seed import seed
from intents.city.pack import load_pack
from intents.handlers.health import _take_place
from tests.stack import drop_database, fresh_database


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    url = fresh_database(request.param, tmp_path)
    yield url
    drop_database(url)


def test_migrations_create_exactly_the_models(database):
    engine = sync_engine(database)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    engine.dispose()
    assert set(SQLModel.metadata.tables) <= tables
    assert diff == [], f"models and migrations differ: {diff}"


def test_seed_is_idempotent_and_keeps_what_citizens_changed(database):
    pack = load_pack()
    engine = sync_engine(database)
    with Session(engine) as db:
        account = db.get(UtilityAccount, "1023456789")
        account.amount_due_fen = 0  # the citizen paid
        db.add(account)
        db.commit()
    assert seed(database, pack) == 0
    with Session(engine) as db:
        assert db.get(UtilityAccount, "1023456789").amount_due_fen == 0
        assert len(db.exec(select(UtilityAccount)).all()) == len(pack.utility_accounts)
    engine.dispose()


async def test_last_place_goes_to_exactly_one_of_many_concurrent_bookings(database):
    engine = sync_engine(database)
    with Session(engine) as db:
        slot = AppointmentSlot(
            hospital_id="renmin", department_id="ophthalmology", day=date(2026, 11, 27), period="am", capacity=1
        )
        db.add(slot)
        db.commit()
        slot_id = slot.id
    engine.dispose()
    aengine = async_engine(database)
    sessions = session_factory(aengine)

    async def attempt() -> int | None:
        async with sessions() as db:
            number = await _take_place(db, slot_id)
            await db.commit()
            return number

    results = await asyncio.gather(*(attempt() for _ in range(10)), return_exceptions=True)
    await aengine.dispose()
    assert [r for r in results if isinstance(r, int)] == [1], results
