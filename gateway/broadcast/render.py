"""What one recipient of a broadcast is sent: the SMS text (never cut: a broadcast is paid for in
full), the WeChat template message, the web push payload, and the dispatcher priority."""

from __future__ import annotations

import hashlib
import json
from typing import Protocol

from channels.base import Outgoing
from channels.sms.segments import segment_count
from channels.webpush.sender import MAX_PAYLOAD_BYTES
from gateway.config import Settings

DEFAULT_TEMPLATE = "citygw_notice"
REMINDER = "（再次提醒）"
ACK_PROMPT = "（请回复“收到”确认）"  # parents acknowledge by replying; gateway/schools.py reads it


class Content(Protocol):
    kind: str
    title: str
    body: str
    urgent: bool


def sms_text(settings: Settings, title: str, body: str, reminder: bool = False, kind: str = "notice") -> str:
    title_part = f"【{title}】" if title else ""
    ack = ACK_PROMPT if kind == "school" else ""
    return f"{settings.sms_signature}{title_part}{REMINDER if reminder else ''}{body}{ack}"


def priority(kind: str, urgent: bool) -> str:
    """Emergencies jump every queue; an urgent school notice goes with chat replies; the rest is bulk."""
    if kind == "emergency":
        return "emergency"
    if kind == "school" and urgent:
        return "reply"
    return "bulk"


def ref(recipient_id: int) -> str:
    return f"recipient:{recipient_id}"


def push_payload(title: str, body: str, url: str = "/") -> str:
    """The JSON the service worker shows (title, body) and opens on a click (url). The tag makes a second
    delivery of the same notice replace the first on screen. The body is shortened, never the title,
    when the whole would not fit a push message (a 500-character body always fits)."""
    tag = "citygw-" + hashlib.sha256(f"{title}\n{body}".encode()).hexdigest()[:16]

    def dump(text: str) -> str:
        return json.dumps({"title": title, "body": text, "url": url, "tag": tag}, ensure_ascii=False)

    payload = dump(body)
    while len(payload.encode()) > MAX_PAYLOAD_BYTES and body:
        excess = len(payload.encode()) - MAX_PAYLOAD_BYTES
        body = body[: max(0, len(body) - excess - 1)]  # each character is at least one byte
        payload = dump(body + "…")
    return payload


def outgoing(
    settings: Settings, content: Content, recipient_id: int, channel: str, address: str, reminder: bool = False
) -> Outgoing:
    """The dispatcher's message for one recipient on the channel chosen for them."""
    common = {"to": address, "ref": ref(recipient_id), "priority": priority(content.kind, content.urgent)}
    if channel == "wechat":
        title = f"{REMINDER}{content.title}" if reminder else content.title
        body = f"{content.body}{ACK_PROMPT if content.kind == 'school' else ''}"
        template = {
            "template_id": settings.wechat_template_id or DEFAULT_TEMPLATE,
            "data": {"title": {"value": title}, "content": {"value": body}},
        }
        return Outgoing(channel="wechat", text=f"【{title}】{body}", template=template, **common)
    if channel == "webpush":
        # no "reply 收到" for school notices: acknowledgements come by SMS or WeChat only
        title = f"{REMINDER}{content.title}" if reminder else content.title
        return Outgoing(channel="webpush", text=push_payload(title, content.body), **common)
    text = sms_text(settings, content.title, content.body, reminder, content.kind)
    return Outgoing(channel="sms", text=text, segments=segment_count(text), **common)
