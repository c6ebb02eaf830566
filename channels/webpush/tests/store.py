"""The gateway's side of channels.webpush's SubscriptionStore and Registrar contracts, in memory, for
the channel's own tests (the gateway keeps them in SQL: gateway/outbound/push_subscriptions.py), as the harness's
RecordingIntake is the gateway's side of a webhook."""

from __future__ import annotations

from channels.webpush.subscription import PushSubscription


class MemorySubscriptions:
    def __init__(self, sessions: tuple[str, ...] = ()) -> None:
        self.live: dict[str, PushSubscription] = {}
        self.outcomes: list[tuple[str, str]] = []  # (key, outcome) as the sender recorded them
        self.sessions = set(sessions)  # web chat sessions that have a conversation
        self.subscribed: list[tuple[str, PushSubscription]] = []

    async def find(self, key: str) -> PushSubscription | None:
        return self.live.get(key)

    async def record(self, key: str, outcome: str) -> None:
        self.outcomes.append((key, outcome))
        if outcome == "gone":
            self.live.pop(key, None)

    async def subscribe(self, session: str, subscription: PushSubscription) -> bool:
        if session not in self.sessions:
            return False
        self.subscribed.append((session, subscription))
        return True
