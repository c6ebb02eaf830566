"""An inbound message as the inbox stream stores it: the same durable queue as outbound messages, its
own entry type."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from channels.base import InboundMessage


@dataclass(frozen=True)
class InboxEntry:
    message: InboundMessage
    priority: str = "reply"  # every inbound message is a conversation turn
    attempt: int = 0

    def as_fields(self) -> dict[str, str]:
        m = self.message
        return {
            "channel": m.channel,
            "sender": m.sender,
            "external_id": m.external_id,
            "text": m.text,
            "timestamp": m.timestamp.isoformat(),
            "metadata": json.dumps(m.metadata, ensure_ascii=False),
            "priority": self.priority,
            "attempt": str(self.attempt),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> InboxEntry:
        message = InboundMessage(
            channel=fields["channel"],
            sender=fields["sender"],
            external_id=fields["external_id"],
            text=fields["text"],
            timestamp=datetime.fromisoformat(fields["timestamp"]),
            metadata=json.loads(fields.get("metadata") or "{}"),
        )
        return cls(message, fields.get("priority", "reply"), int(fields.get("attempt", 0)))
