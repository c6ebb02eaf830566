"""One id that follows a citizen's message through every process: the webhook, the turn, Rasa (in the
turn's metadata), the action server, and the provider send. Log lines carry it (JsonFormatter), so
`grep <id>` over the gateway's, the worker's and the action server's logs tells one message's story.

Standard library only: the action server loads it as the gateway does, and Rasa's Python 3.10 could.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

METADATA_KEY = "trace_id"  # in an inbound message's metadata, a queue entry, and Rasa's turn metadata

_current: ContextVar[str | None] = ContextVar("citygw_trace_id", default=None)


def new_id() -> str:
    # 16 hex digits: unique enough for a day's logs, and shaped unlike the identifiers the masking
    # filter hides (phone numbers, 24/40-character session ids, 32-digit hex ids).
    return secrets.token_hex(8)


def current() -> str | None:
    return _current.get()


def start() -> str:
    """A new id for this task and what it awaits (a webhook request)."""
    trace_id = new_id()
    _current.set(trace_id)
    return trace_id


@contextlib.contextmanager
def bound(trace_id: str | None) -> Iterator[str]:
    """Log lines inside carry trace_id (a new one when the message came without)."""
    token = _current.set(trace_id or new_id())
    try:
        yield _current.get() or ""
    finally:
        _current.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, the trace id when there is one, and
    the traceback. Put the masking filter (common.logfilter) on the same handler: it masks the message
    before this formats it."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id = getattr(record, METADATA_KEY, None) or _current.get()
        if trace_id:
            entry[METADATA_KEY] = trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)
