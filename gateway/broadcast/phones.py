"""Uploaded phone lists: one number per line (or the first cell of a CSV row), normalised to E.164.

Only mainland mobile numbers are accepted (the city's SMS route reaches nothing else). Each bad line
is reported with its line number and a reason, and the good ones are kept."""

from __future__ import annotations

import re
import unicodedata

MAX_PHONES = 10_000  # one upload; larger lists belong in a district/community or topic audience
_MOBILE = re.compile(r"(?:\+86|0086|86)?(1[3-9]\d{9})")
_NOISE = re.compile(r"[\s\-().\u00a0]")  # spaces, dashes, brackets people type inside numbers
_CELL = re.compile(r"[,;\t]")


def normalize_phone(value: str) -> str | None:
    """ "+8613912345678" for any common way of writing a mainland mobile number, else None."""
    text = _NOISE.sub("", unicodedata.normalize("NFKC", value))  # NFKC: full-width digits and plus
    match = _MOBILE.fullmatch(text)
    return f"+86{match.group(1)}" if match else None


def parse_phone_list(text: str) -> tuple[list[str], list[dict[str, object]]]:
    """(valid numbers in upload order, without repeats; errors as {"line", "value", "reason"})."""
    valid: list[str] = []
    errors: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    first = True
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().lstrip("\ufeff")
        if not line:
            continue
        cell = next((c.strip().strip("\"'") for c in _CELL.split(line) if c.strip()), "")
        if first and not any(ch.isdigit() for ch in cell):
            first = False  # a CSV header such as "手机号,姓名"
            continue
        first = False
        phone = normalize_phone(cell)
        if phone is None:
            errors.append({"line": number, "value": cell[:40], "reason": "不是有效的中国大陆手机号"})
        elif phone in seen:
            errors.append({"line": number, "value": cell[:40], "reason": f"与第{seen[phone]}行重复"})
        elif len(valid) >= MAX_PHONES:
            errors.append({"line": number, "value": cell[:40], "reason": f"超出上限：每次最多{MAX_PHONES}个号码"})
        else:
            seen[phone] = number
            valid.append(phone)
    return valid, errors
