"""The gateway's engines: the shared helpers of common.database, under the name gateway code imports."""

from common.database import (
    async_engine,
    dialect_insert,
    id_column,
    saved_id,
    select_rows,
    session_factory,
    sync_engine,
    table_of,
)

__all__ = [
    "async_engine",
    "dialect_insert",
    "id_column",
    "saved_id",
    "select_rows",
    "session_factory",
    "sync_engine",
    "table_of",
]
