"""The inbox's delivery: a person's words go to the citizen as every word outside a bot turn does
(gateway/outbound/telling.py), and the live feed tells open consoles of new waiting tickets and citizens'
messages."""

from __future__ import annotations

from typing import Any

from gateway.db.models import Handoff
from gateway.outbound.telling import Teller

FEED = "handoff:feed"  # the state store's pub/sub topic the console's event stream reads


class Delivery(Teller):
    async def announce(self, kind: str, handoff: Handoff, **detail: Any) -> None:
        """Tell open consoles: "waiting" (a new or transferred ticket), "message" (the citizen wrote),
        "claimed", "closed". No contact details: the console fetches what it may show."""
        event = {"type": kind, "handoff": handoff.id, "number": handoff.number, "team": handoff.team, **detail}
        await self.state.publish(FEED, event)
