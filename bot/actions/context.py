"""The handlers' context for one action: the tracker's slots and latest message, and who is asking.

Who is asking comes with the message: the gateway puts the citizen, the channel and the phone the citizen
has proved they hold into each turn's metadata (gateway/inbound/turn.py). Rasa's REST webhook listens on
loopback for the gateway alone, so a citizen cannot write that metadata; a conversation that did not
come through the gateway (rasa shell) has none, and is nobody in particular."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker

from intents import runtime
from intents.menu import SAID
from intents.services import Service


def _who(metadata: dict[str, Any]) -> tuple[int | None, str | None, str | None]:
    """(citizen id, channel, verified phone) as the gateway sent them; None for what is missing or malformed."""
    citizen_id = metadata.get("citizen_id")
    channel, phone = metadata.get("channel"), metadata.get("verified_phone")
    return (
        citizen_id if isinstance(citizen_id, int) and not isinstance(citizen_id, bool) else None,
        channel if isinstance(channel, str) else None,
        phone if isinstance(phone, str) and phone else None,
    )


def context_for(tracker: Tracker, service: Service | None = None) -> runtime.Context:
    message = tracker.latest_message or {}
    citizen_id, channel, verified_phone = _who(message.get("metadata") or {})
    entities = message.get("entities") or []
    # A "did you mean" button restates the citizen's words: handlers read those, not the payload.
    said = next((e["value"] for e in entities if e.get("entity") == SAID), None)
    slots = dict(tracker.slots)
    if said and slots.get("request_text"):
        slots["request_text"] = said
    return runtime.Context(
        slots=slots,
        citizen_id=citizen_id,
        conversation_id=tracker.sender_id,
        text=said or message.get("text") or "",
        now=runtime.now(),
        pack=runtime.pack(),
        sessions=runtime.sessions(),
        service=service,
        entities=sorted(entities, key=lambda e: e.get("start", 0)),
        verified_phone=verified_phone,
        channel=channel,
    )
