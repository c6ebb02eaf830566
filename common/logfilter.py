"""Masks citizens' identifiers in log records: phone numbers, WeChat openids, web chat session ids and
conversation ids (Rasa's sender ids).

Rasa and the action server log whole trackers when an action fails (the action server's error reply
quotes the request, and Rasa logs that reply with its traceback), and a web chat session id is the
chat's only credential. Both servers load this module through bot/logging.yml
(`--logging-config-file`), so it uses the standard library only and runs on Rasa's Python 3.10 too.

install() masks every record the process creates, whichever handler prints it later (Rasa's
coloredlogs, Sanic's own handlers, which do not propagate), tracebacks included. Masking follows
gateway/logs.py: a phone number keeps its prefix and last four digits (139****5678), any other
identifier its first and last three characters (AbC***xYz).
"""

from __future__ import annotations

import logging
import re
from typing import Any

_ID_CHAR = r"A-Za-z0-9_\-"
# A digit right before a number usually makes it not a phone number, except the end of an escape:
# trackers reach the log as JSON (\u7ed1) or bytes reprs (\xe5) of Chinese text.
_PHONE = re.compile(r"(?:(?<!\d)|(?<=\\u[0-9a-fA-F]{4})|(?<=\\x[0-9a-fA-F]{2}))(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
# Keys whose values name a person or a conversation: JSON, Python reprs (key=value), query strings;
# quotes may come backslash-escaped when JSON sits inside JSON.
_KEYS = "sender_id|sender|recipient_id|session_id|session|message_id|conversation_id|openid|touser|FromUserName"
_KEYED = re.compile(
    rf"(?P<key>(?<![{_ID_CHAR}])(?:{_KEYS})(?:\\*[\"'])?\s*[:=]\s*(?:\\*[\"'])?)(?P<value>[^\"'\\\s,&}}\]\)>]+)"
)
_CONVERSATION_PATH = re.compile(r"(?P<key>/conversations/)(?P<value>[^/\s?\"'#]+)")
_OPENID = re.compile(rf"(?<![{_ID_CHAR}])o[{_ID_CHAR}]{{27}}(?![{_ID_CHAR}])")  # WeChat: 28 characters
# Web chat session ids: 40 characters as the server signs them (channels/webchat/sessions.py), 24 before.
_SESSION = re.compile(rf"(?<![{_ID_CHAR}])(?:[{_ID_CHAR}]{{40}}|[{_ID_CHAR}]{{24}})(?![{_ID_CHAR}])")
_HEX_ID = re.compile(rf"(?<![{_ID_CHAR}])[0-9a-f]{{32}}(?![{_ID_CHAR}])")  # uuid4().hex


def mask(value: str) -> str:
    """Keep enough of an identifier to correlate log lines, never enough to use it."""
    if len(value) <= 6:
        return "*" * len(value)
    return f"{value[:3]}***{value[-3:]}"


def _looks_random(token: str) -> bool:
    # Tokens have upper and lower case and digits or -_; identifiers in code (snake_case, CamelCase) do not.
    return (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() or c in "-_" for c in token)
    )


def mask_text(text: str) -> str:
    """text with every phone number, openid, session id and conversation id in it masked."""
    if not text:
        return text
    text = _PHONE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)
    keyed = lambda m: m.group("key") + (m.group("value") if "***" in m.group("value") else mask(m.group("value")))  # noqa: E731
    text = _KEYED.sub(keyed, text)
    text = _CONVERSATION_PATH.sub(keyed, text)
    text = _OPENID.sub(lambda m: mask(m.group()) if _looks_random(m.group()[1:]) else m.group(), text)
    text = _SESSION.sub(lambda m: mask(m.group()) if _looks_random(m.group()) else m.group(), text)
    return _HEX_ID.sub(lambda m: mask(m.group()), text)


def mask_record(record: logging.LogRecord) -> None:
    """Mask the record's message, traceback and stack in place (once)."""
    if getattr(record, "identifiers_masked", False):
        return
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: logging reports it, with the data masked
        message = f"{record.msg} {record.args!r}"
    record.msg, record.args = mask_text(message), None
    if record.exc_info:
        # Formatted now, so that no handler formats the raw exception again later.
        text = record.exc_text or logging.Formatter().formatException(record.exc_info)
        record.exc_info, record.exc_text = None, mask_text(text)
    elif record.exc_text:
        record.exc_text = mask_text(record.exc_text)
    if record.stack_info:
        record.stack_info = mask_text(record.stack_info)
    record.identifiers_masked = True


class MaskingFilter(logging.Filter):
    """For a handler: records that reach it are masked (install() masks them earlier, everywhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def install(**_: Any) -> MaskingFilter:
    """Mask every log record this process creates from now on; returns a filter for a handler too.
    Named in a logging config's filters as `(): common.logfilter.install`."""
    previous = logging.getLogRecordFactory()
    if not getattr(previous, "masks_identifiers", False):

        def masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            mask_record(record)
            return record

        masking_factory.masks_identifiers = True  # type: ignore[attr-defined]
        logging.setLogRecordFactory(masking_factory)
    return MaskingFilter()
