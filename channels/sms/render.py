"""A turn's replies as one SMS: numbered menu, 【signature】 prefix, cut to a segment budget.

One SMS per turn rather than one per reply: carriers bill per segment and per message, and one
numbered menu per message keeps "回复1" unambiguous."""

from __future__ import annotations

from dataclasses import dataclass

from channels.base import Reply
from channels.sms.segments import cut
from channels.textmenu import numbered


@dataclass(frozen=True)
class RenderedSms:
    text: str
    segments: int
    payloads: list[str]  # what "1", "2", … mean in the citizen's next message
    rest: str  # what "更多" sends next; empty when the whole answer fitted


def render_sms(replies: list[Reply], signature: str, max_segments: int) -> RenderedSms:
    menu = numbered(replies)
    fitted = cut(menu.text, max_segments, signature)
    return RenderedSms(fitted.sent, fitted.segments, menu.payloads, fitted.rest)
