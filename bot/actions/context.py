from __future__ import annotations

from rasa_sdk import Tracker

from gateway.conversations import citizen_of
from intents import runtime
from intents.services import Service


async def context_for(tracker: Tracker, service: Service | None = None) -> runtime.Context:
    sessions = runtime.sessions()
    async with sessions() as db:
        try:
            citizen_id: int | None = await citizen_of(db, tracker.sender_id)
        except LookupError:  # a conversation that did not come through the gateway (rasa shell)
            citizen_id = None
    return runtime.Context(
        slots=dict(tracker.slots),
        citizen_id=citizen_id,
        conversation_id=tracker.sender_id,
        text=tracker.latest_message.get("text") or "",
        now=runtime.now(),
        pack=runtime.pack(),
        sessions=sessions,
        service=service,
        entities=sorted(tracker.latest_message.get("entities") or [], key=lambda e: e.get("start", 0)),
    )
