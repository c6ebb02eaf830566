from __future__ import annotations

import contextlib
import copy
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from gateway.state.base import LocalFanout, Subscription, WindowHit


class MemoryState:
    """In-process state for the single-process default; same semantics as RedisState."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._values: dict[str, tuple[Any, float | None]] = {}
        self._fanout = LocalFanout()

    def _live(self, key: str) -> Any | None:
        item = self._values.get(key)
        if item is None:
            return None
        value, expires = item
        if expires is not None and expires <= self._clock():
            del self._values[key]
            return None
        return value

    def _put(self, key: str, value: Any, ttl_s: float | None) -> None:
        self._values[key] = (value, None if ttl_s is None else self._clock() + ttl_s)

    async def claim(self, key: str, ttl_s: int) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, "1", ttl_s)
        return True

    async def release(self, key: str) -> None:
        self._values.pop(key, None)

    async def get_json(self, key: str) -> Any | None:
        return copy.deepcopy(self._live(key))

    async def set_json(self, key: str, value: Any, ttl_s: int | None = None) -> None:
        self._put(key, copy.deepcopy(value), ttl_s)

    async def hit(self, key: str, window_s: int) -> int:
        bucket = f"{key}:{int(time.time() // window_s)}"
        count = (self._live(bucket) or 0) + 1
        self._put(bucket, count, window_s)
        return count

    async def hit_sliding(self, key: str, window_s: int) -> WindowHit:
        now = self._clock()
        events = {i: t for i, t in (self._live(key) or {}).items() if t > now - window_s}
        hit_id = secrets.token_hex(8)
        events[hit_id] = now
        self._put(key, events, window_s)
        return WindowHit(hit_id, len(events), min(events.values()) + window_s - now)

    async def forget(self, key: str, hit_id: str) -> None:
        events = self._live(key)
        if events:
            events.pop(hit_id, None)

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        self._fanout.deliver(topic, copy.deepcopy(message))

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        with self._fanout.listen(topic) as sub:
            yield sub

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._values.clear()
