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


_LONG_NUMBER = re.compile(r"(?<![\d*])(\d{2})(\d{3,})([\dXx]?)(?![\d*])")


def mask_numbers(text: str) -> str:
    """A citizen's text for staff to read: phone numbers as mask_phones shows them, and every other run of
    five or more digits (ID, account, card numbers) cut to its first two ("12路" and "3号楼" stay)."""
    masked = mask_phones(text)
    return _LONG_NUMBER.sub(lambda m: m.group(1) + "*" * (len(m.group(2)) + len(m.group(3))), masked)


def where(exc: BaseException) -> str:
    """file:line where an exception was raised: enough to find a bug, without the data its text or
    traceback may hold (database errors quote parameters: phone numbers)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"
