"""What an outbound message's outcome is written to. On the queue a ref is a string ("message:42");
everywhere else it is one of these types, parsed once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MessageRef:
    """A reply in the conversation log (Message row)."""

    id: int

    def __str__(self) -> str:
        return f"message:{self.id}"


@dataclass(frozen=True)
class RecipientRef:
    """One citizen of a broadcast or school notice (BroadcastRecipient row)."""

    id: int

    def __str__(self) -> str:
        return f"recipient:{self.id}"


@dataclass(frozen=True)
class NoticeRef:
    """A one-off message kept in no table (a refusal, a verification code); `key` makes it unique."""

    key: str

    def __str__(self) -> str:
        return f"notice:{self.key}"


Ref = MessageRef | RecipientRef | NoticeRef


def parse(ref: str) -> Ref:
    kind, _, ident = ref.partition(":")
    if kind == "message" and ident.isdigit():
        return MessageRef(int(ident))
    if kind == "recipient" and ident.isdigit():
        return RecipientRef(int(ident))
    return NoticeRef(ident if kind == "notice" else ref)
