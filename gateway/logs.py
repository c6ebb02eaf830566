"""Logging set-up and masking of personal data (phone numbers, openids, session ids)."""

from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<!\d)(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask(address: str | None) -> str:
    """Keep enough of an address to correlate log lines, never enough to identify a person."""
    if not address:
        return "-"
    if len(address) <= 6:
        return "*" * len(address)
    return f"{address[:3]}***{address[-3:]}"


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
