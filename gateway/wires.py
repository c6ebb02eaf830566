"""The channels this deployment speaks, by name: the one place that lists them. The rest of the gateway
asks a channel's wire what it needs to know (how to render, whether its addresses are phones, what
replaces it when it fails) and never compares channel names. A new channel is a folder under channels/
plus one line here."""

from __future__ import annotations

from channels.base import PlainWire, Wire
from channels.sms.wire import SmsWire
from channels.webchat.wire import WebChatWire
from channels.webpush.wire import WebPushWire
from channels.wechat.wire import WeChatWire
from gateway.config import Settings


class Wires(dict[str, Wire]):
    """Channel name → its wire; `phone` is the one whose addresses are phone numbers (verification codes
    and fallbacks go there)."""

    def __init__(self, phone: SmsWire, others: list[Wire]) -> None:
        super().__init__((w.name, w) for w in [phone, *others])
        self.phone = phone


# Every channel this deployment speaks; the order is the order notices fall through when a citizen has
# no preference (after the phone). What routing needs is known from the classes, without settings.
CHANNELS: tuple[type[PlainWire], ...] = (SmsWire, WeChatWire, WebChatWire, WebPushWire)
PHONE = SmsWire


def wires(settings: Settings) -> Wires:
    phone = PHONE(settings.sms_signature, settings.sms_max_segments)
    configured: dict[type[PlainWire], PlainWire] = {WeChatWire: WeChatWire(settings.wechat_template_id)}
    return Wires(phone, [configured.get(kind) or kind() for kind in CHANNELS if kind is not PHONE])
