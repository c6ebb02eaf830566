"""Logging set-up and masking of personal data (phone numbers, openids, session ids)."""

from __future__ import annotations

import logging
import os
import re
import traceback

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

_PHONE = re.compile(r"(?<!\d)(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask(address: str | None) -> str:
    """Keep enough of an address to correlate log lines, never enough to identify a person."""
    if not address:
        return "-"
    if len(address) <= 6:
        return "*" * len(address)
    return f"{address[:3]}***{address[-3:]}"


def where(exc: BaseException) -> str:
    """file:line where an exception was raised: enough to find a bug, without the data its text or
    traceback may hold (database errors quote parameters: phone numbers)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"


class MaskingFilter(logging.Filter):
    """Last line of defence: phone numbers that slip into a log message are masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _PHONE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)


class PrivateAccessLogger(AbstractAccessLogger):
    """aiohttp's access log without query strings: WeChat puts the citizen's openid in the callback
    URL, and signatures and tokens travel there too."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                '%s "%s %s" %s %s %.1fms',
                request.remote,
                request.method,
                request.path,
                response.status,
                response.body_length,
                time * 1000,
            )
