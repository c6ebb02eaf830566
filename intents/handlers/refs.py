"""Human-readable references: two letters, the date, four random digits (GH2611250012)."""

from __future__ import annotations

import secrets
from datetime import datetime


def new_ref(prefix: str, now: datetime) -> str:
    return f"{prefix}{now:%y%m%d}{secrets.randbelow(10_000):04d}"


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"
