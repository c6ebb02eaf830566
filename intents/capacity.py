"""Places that run out (clinic half-days, screenings, bookable places): the capacity row, made on
first use, and taking from it in one conditional UPDATE so nothing is ever oversold."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute, Mapped
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")


async def capacity_row(sessions: async_sessionmaker[AsyncSession], query: Any, make: Callable[[], T]) -> T:
    """The row the query finds, inserted by make() when it does not exist yet."""
    async with sessions() as db:
        row = (await db.exec(query)).first()
        if row is None:
            db.add(make())
            try:
                await db.commit()
            except IntegrityError:  # made by a concurrent turn: read theirs
                await db.rollback()
            row = (await db.exec(query)).one()
        return row


def _attribute(counter: Mapped[int]) -> InstrumentedAttribute[int]:
    if not isinstance(counter, InstrumentedAttribute):
        raise TypeError(f"a counter is a table model's column, col(Model.field): not {counter!r}")
    return counter


async def take(db: AsyncSession, counter: Mapped[int], row_id: int, amount: int = 1) -> int | None:
    """Raise the counter (booked, sold) by amount only while the row's capacity allows it, in one
    statement: two citizens can never take the last place together, on SQLite or PostgreSQL.
    Returns the new count, or None when there is no room."""
    counter = _attribute(counter)
    model = counter.class_
    taken = await db.exec(
        update(model)
        .where(col(model.id) == row_id, col(counter) + amount <= col(model.capacity))
        .values({counter.key: counter + amount})
        .returning(counter)
    )
    return taken.scalar()


async def give_back(db: AsyncSession, counter: Mapped[int], row_id: int | None, amount: int = 1) -> None:
    """Return places taken by a cancelled booking (never below zero)."""
    counter = _attribute(counter)
    model = counter.class_
    await db.exec(
        update(model).where(col(model.id) == row_id, col(counter) >= amount).values({counter.key: counter - amount})
    )
