"""What one recipient of a broadcast is sent: the notice as their channel carries it (the SMS never
cut, a WeChat template message, a web push payload: channels/*/wire.py), and the dispatcher priority."""

from __future__ import annotations

from typing import Protocol

from channels.base import Outgoing
from gateway.config import Settings
from gateway.outbound.refs import RecipientRef
from gateway.wires import wires

REMINDER = "（再次提醒）"
ACK_PROMPT = "（请回复“收到”确认）"  # parents acknowledge by replying; gateway/inbound/schools.py reads it


class Content(Protocol):
    # read-only: a Broadcast row and the runner's frozen Content both fit
    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def urgent(self) -> bool: ...


def sms_text(settings: Settings, title: str, body: str, reminder: bool = False, kind: str = "notice") -> str:
    """The SMS as it will go out, for the staff preview."""
    ack = ACK_PROMPT if kind == "school" else ""
    return wires(settings).phone.notice(title, body, REMINDER if reminder else "", ack).text


def priority(kind: str, urgent: bool) -> str:
    """Emergencies jump every queue; an urgent school notice goes with chat replies; the rest is bulk."""
    if kind == "emergency":
        return "emergency"
    if kind == "school" and urgent:
        return "reply"
    return "bulk"


def ref(recipient_id: int) -> str:
    return str(RecipientRef(recipient_id))


def outgoing(
    settings: Settings, content: Content, recipient_id: int, channel: str, address: str, reminder: bool = False
) -> Outgoing:
    """The dispatcher's message for one recipient on the channel chosen for them, as that channel
    carries a notice (gateway.wires)."""
    notice = wires(settings)[channel].notice(
        content.title, content.body, REMINDER if reminder else "", ACK_PROMPT if content.kind == "school" else ""
    )
    return Outgoing(
        channel=channel,
        to=address,
        text=notice.text,
        ref=ref(recipient_id),
        priority=priority(content.kind, content.urgent),
        segments=notice.segments,
        template=notice.template,
    )
