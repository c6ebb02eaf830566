"""WeChat as the gateway sees it: customer-service text with numbered menus (no buttons), long answers
continued by "更多", follow and menu-click events, and template messages once the 48-hour window closes."""

from __future__ import annotations

from dataclasses import replace

from channels.base import ChannelEvent, InboundMessage, Notice, Outgoing, PlainWire, Rendered, Rendering, Reply
from channels.textmenu import numbered

CHANNEL = "wechat"
MAX_CHARS = 600  # customer-service text allows 2048 bytes; 600 CJK characters stay well inside
CONTINUED = "…回复“更多”看下文"
DEFAULT_TEMPLATE = "citygw_notice"
TEMPLATE_CHARS = 200  # a template field's value is short; the rest would be cut by WeChat anyway


class WeChatWire(PlainWire):
    name = CHANNEL
    label = "微信"
    carries_notices = True
    numbered_menus = True
    binds_phone = True
    falls_back_to_phone = True

    def __init__(self, template_id: str | None = None) -> None:
        self.template_id = template_id

    def notice(self, title: str, body: str, reminder: str, ack: str) -> Notice:
        """A template message: notices reach followers outside the 48-hour customer-service window."""
        title, body = f"{reminder}{title}", f"{body}{ack}"
        template = {
            "template_id": self.template_id or DEFAULT_TEMPLATE,
            "data": {"title": {"value": title}, "content": {"value": body}},
        }
        return Notice(f"【{title}】{body}", template=template)

    def render(self, replies: list[Reply]) -> Rendering:
        menu = numbered(replies)
        text, rest = menu.text, ""
        if len(text) > MAX_CHARS:
            keep = MAX_CHARS
            line_end = text.rfind("\n", 0, keep + 1)
            if line_end >= keep // 2:  # never split a menu line or a name between two messages
                keep = line_end + 1
            text, rest = text[:keep] + CONTINUED, text[keep:]
        return Rendering([Rendered(text, [b for r in replies for b in r.buttons])], menu.payloads, rest)

    def event(self, message: InboundMessage) -> ChannelEvent | None:
        event = message.metadata.get("event")
        if event is None:
            return None
        if event == "subscribe":
            return ChannelEvent("follow")
        if event == "click":
            return ChannelEvent("button", message.metadata.get("event_key", ""))
        return ChannelEvent("other", event)

    def window_closed(self, message: Outgoing) -> Outgoing | None:
        if message.template is not None or not self.template_id:
            return None
        data = {"content": {"value": message.text[:TEMPLATE_CHARS]}}
        return replace(message, template={"template_id": self.template_id, "data": data})
