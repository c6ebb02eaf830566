"""Buttons for channels that only carry text (SMS, WeChat customer-service messages).

A turn's buttons become a numbered menu ("回复1 查公交"); the payloads are kept per address so a
later "1" is read as that button. Numbers run across all replies of one turn."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from channels.base import Reply

MORE_WORDS = {"更多", "MORE", "下一页"}


@dataclass(frozen=True)
class Menu:
    text: str  # the replies' text with the numbered choices appended
    payloads: list[str]  # payloads[i] answers "i+1"


def numbered(replies: list[Reply]) -> Menu:
    parts: list[str] = []
    payloads: list[str] = []
    for reply in replies:
        lines = [reply.text] if reply.text else []
        for button in reply.buttons:
            payloads.append(button.get("payload") or button.get("title", ""))
            lines.append(f"回复{len(payloads)} {button.get('title', '')}")
        if lines:
            parts.append("\n".join(lines))
    return Menu("\n".join(parts), payloads)


def choice(text: str, payloads: list[str]) -> str | None:
    """The payload a bare number picks ("1", "１", " 2 "), or None when the text is not a menu choice."""
    word = unicodedata.normalize("NFKC", text).strip().rstrip("。.")
    if word.isdigit() and 1 <= int(word) <= len(payloads):
        return payloads[int(word) - 1]
    return None


def wants_more(text: str) -> bool:
    return unicodedata.normalize("NFKC", text).strip().strip("。.!！").upper() in MORE_WORDS
