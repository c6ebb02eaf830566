"""Masking of personal data (phone numbers, openids, session ids) before anything is logged."""

from __future__ import annotations

import os
import re
import traceback

_PHONE = re.compile(r"(?<!\d)(\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask(address: str | None) -> str:
    """Keep enough of an address to correlate log lines, never enough to identify a person."""
    if not address:
        return "-"
    if len(address) <= 6:
        return "*" * len(address)
    return f"{address[:3]}***{address[-3:]}"


def mask_phones(text: str) -> str:
    """Mainland mobile numbers anywhere in a text, with their middle four digits hidden."""
    return _PHONE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(4)}", text)


def where(exc: BaseException) -> str:
    """file:line where an exception was raised: enough to find a bug, without the data its text or
    traceback may hold (database errors quote parameters: phone numbers)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"
