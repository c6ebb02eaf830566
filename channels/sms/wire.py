"""SMS as the gateway sees it: the sender is a phone number, a turn's replies go out as one signed SMS
with a numbered menu, and TD/订阅/帮助 are keywords."""

from __future__ import annotations

from channels.base import Notice, PlainWire, Rendered, Rendering, Reply
from channels.sms.keywords import keyword
from channels.sms.render import render_sms
from channels.sms.segments import cut, segment_count

CHANNEL = "sms"


class SmsWire(PlainWire):
    name = CHANNEL
    label = "短信"
    carries_notices = True
    numbered_menus = True
    address_is_phone = True
    addressed_by = "phone"

    def __init__(self, signature: str, max_segments: int) -> None:
        self.signature, self.max_segments = signature, max_segments

    def render(self, replies: list[Reply]) -> Rendering:
        sms = render_sms(replies, self.signature, self.max_segments)
        buttons = [b for r in replies for b in r.buttons]
        return Rendering([Rendered(sms.text, buttons, sms.segments)], sms.payloads, sms.rest)

    def keyword(self, text: str) -> str | None:
        return keyword(text)

    def notice(self, title: str, body: str, reminder: str, ack: str) -> Notice:
        """Signed, never cut: a broadcast is paid for in full."""
        text = f"{self.signature}{f'【{title}】' if title else ''}{reminder}{body}{ack}"
        return Notice(text, segment_count(text))

    def signed(self, text: str) -> Rendered:
        """A notice (a verification code, a broadcast) with the signature, never cut: it is paid in full."""
        signed = f"{self.signature}{text}"
        return Rendered(signed, segments=segment_count(signed))

    def fitted(self, text: str) -> Rendered:
        """A chat reply moved to SMS: signed and cut to the reply budget, like every SMS answer."""
        sms = cut(text, self.max_segments, self.signature)
        return Rendered(sms.sent, segments=sms.segments)
