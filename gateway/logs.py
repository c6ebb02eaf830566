"""Logging set-up. The masking of personal data (phone numbers, openids, session ids) is common.privacy's,
imported here under the names gateway code uses."""

from __future__ import annotations

import logging

from common.privacy import mask, mask_phones, where

__all__ = ["MaskingFilter", "mask", "setup_logging", "where"]


class MaskingFilter(logging.Filter):
    """Last line of defence: phone numbers that slip into a log message are masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phones(message)
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
