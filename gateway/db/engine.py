"""The gateway's engines: the shared helpers of common.database, under the name gateway code imports."""

from common.database import async_engine, dialect_insert, session_factory, sync_engine

__all__ = ["async_engine", "dialect_insert", "session_factory", "sync_engine"]
