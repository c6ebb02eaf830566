"""Human-readable references: two letters, the date, four random digits (GH2611250012)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, overload

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")


def new_ref(prefix: str, now: datetime) -> str:
    return f"{prefix}{now:%y%m%d}{secrets.randbelow(10_000):04d}"


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


@overload
async def insert_with_ref(
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    now: datetime,
    build: Callable[[str, None], T],
    take: None = None,
) -> T: ...


@overload
async def insert_with_ref(
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    now: datetime,
    build: Callable[[str, int], T],
    take: Callable[[AsyncSession], Awaitable[int | None]],
) -> T | None: ...


async def insert_with_ref(
    sessions: async_sessionmaker[AsyncSession],
    prefix: str,
    now: datetime,
    build: Callable[[str, Any], T],
    take: Callable[[AsyncSession], Awaitable[int | None]] | None = None,
) -> T | None:
    """Insert build(ref, taken): a row carrying a new random reference. With `take`, first take
    capacity in the same transaction (None when full: nothing is inserted). A reference collision
    rolls both back and draws a new reference."""
    for _attempt in range(5):
        async with sessions() as db:
            taken = await take(db) if take is not None else None
            if take is not None and taken is None:
                await db.rollback()
                return None
            row = build(new_ref(prefix, now), taken)
            db.add(row)
            try:
                await db.commit()
                return row
            except IntegrityError:
                await db.rollback()
    raise RuntimeError(f"no free {prefix} reference after 5 attempts")
