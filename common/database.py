"""Engines from one database URL: sqlite:///file (default) or postgresql://… . The gateway and the
domain (the action server) open their own engines on the same URL."""

from __future__ import annotations

from typing import Any, Protocol, TypeVarTuple

from sqlalchemy import Result, Select, Table, create_engine, event, inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.ext.asyncio import AsyncSession as SqlAlchemyAsyncSession
from sqlalchemy.orm import Mapped
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

_DRIVERS = {
    "sqlite": ("sqlite", "sqlite+aiosqlite"),
    "postgresql": ("postgresql+psycopg", "postgresql+psycopg"),
}


def _with_driver(url: str, asynchronous: bool) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")
    driver = _DRIVERS[backend][1 if asynchronous else 0]
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def _tune_sqlite(engine: Engine) -> None:
    # WAL lets the action server write while the gateway reads; busy_timeout rides out short locks.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(
            "PRAGMA synchronous=NORMAL"
        )  # with WAL: survives a process crash; a power cut may lose the last commits
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def sync_engine(url: str) -> Engine:
    engine = create_engine(_with_driver(url, asynchronous=False))
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def async_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    # Dispatch workers record every send: the default pool of 5 made them queue for connections
    # (bench/broadcast: ~60 messages/s); overflow lets a burst open more than pool_size for a while.
    engine = create_async_engine(
        _with_driver(url, asynchronous=True), pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size * 2
    )
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine.sync_engine)
    return engine


def dialect_insert(db: AsyncSession, model: Any) -> Any:
    """INSERT for the session's database (SQLite or PostgreSQL), which knows ON CONFLICT. On the model's
    Table, not the model: a Core insert given many rows is sent as multi-row VALUES, where the ORM's
    bulk path would go row by row."""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(model.__table__)


_Columns = TypeVarTuple("_Columns")


async def select_rows(db: AsyncSession, statement: Select[*_Columns]) -> Result[*_Columns]:
    """Run a SQLAlchemy select, its rows typed by its columns. For the selects SQLModel's `exec` cannot
    type: more than four columns, or rows read by column name (`row.status`), which exec types as plain
    tuples. SQLAlchemy's own execute: SQLModel's override only adds a DeprecationWarning pointing at exec."""
    return await SqlAlchemyAsyncSession.execute(db, statement)


class _Stored(Protocol):
    @property
    def id(self) -> int | None: ...


def saved_id(row: _Stored) -> int:
    """The primary key of a row that is in the database (loaded, or added and flushed). SQLModel types ids
    `int | None` because a new row has none until the flush gives it one."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id yet: flush it first")
    return row.id


def id_column(model: type[Any]) -> Mapped[int]:
    """`col(Model.id)`, typed as what the column holds: ids are NOT NULL in the table; the model types `id`
    `int | None` only because a new row has none until it is flushed."""
    return col(model.id)


def table_of(model: type[Any]) -> Table:
    """The Core Table of a table model: SQLModel's metaclass sets `__table__` but does not declare it."""
    table = inspect(model).local_table
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to one table")
    return table


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
