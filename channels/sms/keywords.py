"""SMS keywords handled before the bot: unsubscribe, resubscribe, help. Matched on the whole
message (no spaces needed, case and full-width insensitive), so "TD" unsubscribes but
"TD是什么意思" goes to the assistant."""

from __future__ import annotations

import unicodedata

STOP = {"TD", "T", "退订", "STOP", "UNSUBSCRIBE", "取消订阅"}
START = {"订阅", "START", "恢复订阅"}
HELP = {"帮助", "HELP"}


def keyword(text: str) -> str | None:
    """ "stop", "start", "help", or None for a message meant for the assistant."""
    word = unicodedata.normalize("NFKC", text).strip().strip("。.!！").upper()
    if word in STOP:
        return "stop"
    if word in START:
        return "start"
    if word in HELP:
        return "help"
    return None
