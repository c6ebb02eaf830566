"""Secrets, phone numbers and openids must never reach the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterable


def assert_no_leaks(records: Iterable[logging.LogRecord], secrets: Iterable[str]) -> None:
    needles = [s for s in secrets if s]
    for record in records:
        text = record.getMessage() + (f" {record.exc_text}" if record.exc_text else "")
        for needle in needles:
            assert needle not in text, f"{needle[:3]}… leaked into the log: {record.name}: {text[:200]}"
