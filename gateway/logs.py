"""Logging set-up. The masking of personal data (phone numbers, openids, session ids) is common.privacy's,
imported here under the names gateway code uses."""

from __future__ import annotations

import logging
from typing import TextIO

from common import logfilter
from common.privacy import mask, mask_phones, where
from common.trace import JsonFormatter

__all__ = ["MaskingFilter", "mask", "setup_logging", "where"]


class MaskingFilter(logging.Filter):
    """Last line of defence: phone numbers that slip into a log message are masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phones(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(level: str = "INFO", log_format: str = "text", stream: TextIO | None = None) -> None:
    """Text lines, or (log_format "json", CITYGW_LOG_FORMAT) one JSON object a line with the trace id of
    the message being handled; JSON logs mask openids and session ids as well as phone numbers."""
    handler = logging.StreamHandler(stream)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        handler.addFilter(logfilter.MaskingFilter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
