"""The channels this deployment speaks, by name: the one place that lists them. The rest of the gateway
asks a channel's wire what it needs to know (how to render, whether its addresses are phones, what
replaces it when it fails) and never compares channel names. A new channel is a folder under channels/
plus one line here."""

from __future__ import annotations

from collections.abc import Iterator

from channels.base import Wire
from channels.sms.wire import SmsWire
from channels.webchat.wire import WebChatWire
from channels.webpush.wire import WebPushWire
from channels.wechat.wire import WeChatWire
from gateway.config import Settings


class Wires:
    def __init__(self, phone: SmsWire, others: list[Wire]) -> None:
        self.phone = phone  # where verification codes and fallbacks go: its addresses are phone numbers
        self._by_name: dict[str, Wire] = {w.name: w for w in [phone, *others]}

    def __getitem__(self, name: str) -> Wire:
        return self._by_name[name]

    def __iter__(self) -> Iterator[Wire]:
        return iter(self._by_name.values())


def wires(settings: Settings) -> Wires:
    return Wires(
        SmsWire(settings.sms_signature, settings.sms_max_segments),
        [WeChatWire(settings.wechat_template_id), WebChatWire(), WebPushWire()],
    )
