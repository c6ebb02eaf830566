"""Web push as the gateway sees it: notices only (citizens never write on it), replaced by an SMS when
the subscription is gone."""

from __future__ import annotations

import hashlib
import json

from channels.base import Notice, PlainWire
from channels.webpush.sender import CHANNEL, MAX_PAYLOAD_BYTES


class WebPushWire(PlainWire):
    name = CHANNEL
    label = "网页推送"
    carries_notices = True
    falls_back_to_phone = True
    addressed_by = "push_subscription"  # a subscription from the web chat page, not an identity

    def notice(self, title: str, body: str, reminder: str, ack: str) -> Notice:
        # no "reply 收到": citizens cannot answer a push message (acknowledgements come by SMS or WeChat)
        return Notice(push_payload(f"{reminder}{title}", body))


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
