"""Per-provider send rate limits, shared by every dispatch worker.

A reservation scheduler (GCRA, the arithmetic of a token bucket kept as one timestamp): each caller
reserves the next free slot and is told how long to wait for it, rather than being refused and
polling. One timestamp per key — the "theoretical arrival time" (tat) at which the provider is free
again — is advanced by cost / rate on every reservation. Units are whatever the caller counts: messages,
or SMS segments (cost = segments). Over any window of W seconds at most rate × W + burst + one message's
cost goes out. rate None or 0 means unlimited (benchmarks, local fakes).

RedisRateLimiter keeps the timestamp in Redis and updates it in one Lua script on the Redis server's
clock, so workers on several machines share one budget without trusting each other's clocks.
MemoryRateLimiter does the same arithmetic in one process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import redis.asyncio as aioredis

from gateway.state.redis import connect

__all__ = ["MemoryRateLimiter", "RateLimiter", "RedisRateLimiter", "create_limiter"]


class RateLimiter(Protocol):
    async def reserve(self, key: str, rate: float | None, cost: float = 1.0, burst: float = 0.0) -> float:
        """Book `cost` units at `rate` units per second; returns the seconds to wait before using them.
        `burst` units may go out back to back after an idle spell."""

    async def acquire(self, key: str, rate: float | None, cost: float = 1.0, burst: float = 0.0) -> float:
        """Reserve and wait; returns the seconds waited."""

    async def close(self) -> None: ...


def create_limiter(redis_url: str | None) -> RateLimiter:
    if not redis_url:
        return MemoryRateLimiter()
    return RedisRateLimiter(redis_url)


def _unlimited(rate: float | None) -> bool:
    return not rate or rate <= 0


class _Waiting:
    async def reserve(self, key: str, rate: float | None, cost: float = 1.0, burst: float = 0.0) -> float:
        raise NotImplementedError

    async def acquire(self, key: str, rate: float | None, cost: float = 1.0, burst: float = 0.0) -> float:
        delay = await self.reserve(key, rate, cost, burst)
        if delay > 0:
            await asyncio.sleep(delay)
        return delay


class MemoryRateLimiter(_Waiting):
    """The limiter for one process."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}

    async def reserve(self, key: str, rate: float | None, cost: float = 1.0, burst: float = 0.0) -> float:
        if rate is None or _unlimited(rate):
            return 0.0
        now = self._clock()
        start = max(self._tat.get(key, now), now)
        self._tat[key] = start + cost / rate
        # no await between reading and writing the timestamp: atomic within the event loop
        return max(0.0, start - now - burst / rate)

    async def close(self) -> None:
        self._tat.clear()


# Times in microseconds. '%.0f' keeps them exact (Lua's tostring would round to 14 digits).
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local per_unit = 1000000 / tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local start = math.max(tat, now)
local new_tat = start + tonumber(ARGV[2]) * per_unit
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
return math.max(0, math.floor(start - now - tonumber(ARGV[3]) * per_unit))
"""


class RedisRateLimiter(_Waiting):
    """One budget per key for every worker connected to the same Redis."""

    def __init__(self, redis: str | aioredis.Redis, prefix: str = "citygw:rate:") -> None:
        if isinstance(redis, str):
            self._redis, self._owned = connect(redis), True
        else:
            self._redis, self._owned = redis, False
        self._prefix = prefix
        self._script = self._redis.register_script(_RESERVE)

    async def reserve(self, key: str, rate: float | None, cost: float = 1.0, burst: float = 0.0) -> float:
        if rate is None or _unlimited(rate):
            return 0.0
        delay_us = await self._script(keys=[self._prefix + key], args=[rate, cost, burst])
        return int(delay_us) / 1_000_000

    async def close(self) -> None:
        if self._owned:
            await self._redis.aclose()
