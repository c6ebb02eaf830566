"""Human-readable references: two letters, the date, four random digits (GH2611250012)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")


def new_ref(prefix: str, now: datetime) -> str:
    return f"{prefix}{now:%y%m%d}{secrets.randbelow(10_000):04d}"


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


async def insert_with_ref(
    sessions: async_sessionmaker[AsyncSession], prefix: str, now: datetime, build: Callable[[str], T]
) -> T:
    """Insert a row that carries a new random reference, drawing again on the rare collision."""
    for _attempt in range(5):
        async with sessions() as db:
            row = build(new_ref(prefix, now))
            db.add(row)
            try:
                await db.commit()
                return row
            except IntegrityError:
                await db.rollback()
    raise RuntimeError(f"no free {prefix} reference after 5 attempts")
