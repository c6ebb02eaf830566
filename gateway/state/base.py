from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol


class Subscription:
    """Messages published to one topic, delivered to one local listener."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)

    async def get(self, timeout: float | None = None) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    def offer(self, message: dict[str, Any]) -> None:
        # A listener that stopped reading must not block the publisher: drop its oldest message.
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(message)


class LocalFanout:
    """Topic → local subscriptions; both state backends deliver through it."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = defaultdict(set)

    @contextlib.contextmanager
    def listen(self, topic: str) -> Iterator[Subscription]:
        """A local subscription to topic for the duration of the with-block."""
        sub = Subscription(topic)
        self.add(sub)
        try:
            yield sub
        finally:
            self.remove(sub)

    def add(self, sub: Subscription) -> bool:
        first = not self._subs[sub.topic]
        self._subs[sub.topic].add(sub)
        return first

    def remove(self, sub: Subscription) -> bool:
        subs = self._subs.get(sub.topic)
        if subs is None:
            return False
        subs.discard(sub)
        if not subs:
            del self._subs[sub.topic]
            return True
        return False

    def deliver(self, topic: str, message: dict[str, Any]) -> None:
        for sub in list(self._subs.get(topic, ())):
            sub.offer(message)


@dataclass(frozen=True)
class WindowHit:
    """One event counted in a sliding window."""

    id: str  # hand it to StateStore.forget to withdraw the event
    count: int  # events in the last window_s seconds, this one included
    oldest_expires_in_s: float  # until the oldest of them leaves the window (and the count drops)


class StateStore(Protocol):
    async def claim(self, key: str, ttl_s: int) -> bool:
        """Set key if absent; True only for the first claimant within ttl_s."""

    async def release(self, key: str) -> None: ...

    async def get_json(self, key: str) -> Any | None: ...

    async def set_json(self, key: str, value: Any, ttl_s: int | None = None) -> None: ...

    async def hit(self, key: str, window_s: int) -> int:
        """Count one event in the current fixed window; returns the count so far."""

    async def hit_sliding(self, key: str, window_s: int) -> WindowHit:
        """Count one event now in a window sliding over the last window_s seconds (no burst at a
        window boundary, unlike hit); atomic, so concurrent callers see distinct counts."""

    async def forget(self, key: str, hit_id: str) -> None:
        """Withdraw one event that hit_sliding counted."""

    async def publish(self, topic: str, message: dict[str, Any]) -> None: ...

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
