from __future__ import annotations

from rasa_sdk import Tracker

from gateway.conversations import citizen_of, who_is_asking
from intents import runtime
from intents.menu import SAID
from intents.services import Service


async def context_for(tracker: Tracker, service: Service | None = None) -> runtime.Context:
    sessions = runtime.sessions()
    async with sessions() as db:
        try:
            citizen_id: int | None = await citizen_of(db, tracker.sender_id)
        except LookupError:  # a conversation that did not come through the gateway (rasa shell)
            citizen_id = None
        # Only personal records need to know the proven phone: two reads kept off every other turn.
        personal = service is not None and service.personal
        verified_phone, channel = await who_is_asking(db, tracker.sender_id) if personal else (None, None)
    entities = tracker.latest_message.get("entities") or []
    # A "did you mean" button restates the citizen's words: handlers read those, not the payload.
    said = next((e["value"] for e in entities if e.get("entity") == SAID), None)
    slots = dict(tracker.slots)
    if said and slots.get("request_text"):
        slots["request_text"] = said
    return runtime.Context(
        slots=slots,
        citizen_id=citizen_id,
        conversation_id=tracker.sender_id,
        text=said or tracker.latest_message.get("text") or "",
        now=runtime.now(),
        pack=runtime.pack(),
        sessions=sessions,
        service=service,
        entities=sorted(entities, key=lambda e: e.get("start", 0)),
        verified_phone=verified_phone,
        channel=channel,
    )
