from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from gateway.state.base import LocalFanout, Subscription, WindowHit

log = logging.getLogger(__name__)
MAX_CONNECTIONS = 64


def connect(url: str) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing: redis-py's default pool
    raises "Too many connections" at 100 concurrent commands, which a burst of webhooks reaches
    (measured with bench/inbound: 500s to Twilio). Waiting a moment is the right answer to a burst."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, decode_responses=True, max_connections=MAX_CONNECTIONS, timeout=10
    )
    return aioredis.Redis(connection_pool=pool)


class RedisState:
    """Shared state in Redis. Pub/sub uses one pattern subscription per process, fanned out locally,
    so a thousand open web chats cost one Redis connection rather than a thousand."""

    def __init__(self, url: str, prefix: str = "citygw") -> None:
        # One prefix per deployment: two gateways sharing a Redis must not share dedupe claims.
        self._prefix = f"{prefix}:"
        self._redis = connect(url)
        self._fanout = LocalFanout()
        self._reader: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def claim(self, key: str, ttl_s: int) -> bool:
        return bool(await self._redis.set(self._prefix + key, "1", nx=True, ex=ttl_s))

    async def release(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def get_json(self, key: str) -> Any | None:
        raw = await self._redis.get(self._prefix + key)
        return None if raw is None else json.loads(raw)

    async def set_json(self, key: str, value: Any, ttl_s: int | None = None) -> None:
        await self._redis.set(self._prefix + key, json.dumps(value, ensure_ascii=False), ex=ttl_s)

    async def hit(self, key: str, window_s: int) -> int:
        bucket = f"{self._prefix}{key}:{int(time.time() // window_s)}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(bucket)
            pipe.expire(bucket, window_s)
            count, _ = await pipe.execute()
        return int(count)

    async def hit_sliding(self, key: str, window_s: int) -> WindowHit:
        # A sorted set of event ids scored by time; the transaction makes prune-add-count atomic.
        k, now = self._prefix + key, time.time()
        hit_id = secrets.token_hex(8)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(k, "-inf", now - window_s)
            pipe.zadd(k, {hit_id: now})
            pipe.zcard(k)
            pipe.zrange(k, 0, 0, withscores=True)
            pipe.expire(k, math.ceil(window_s))
            _, _, count, oldest, _ = await pipe.execute()
        oldest_at = oldest[0][1] if oldest else now
        return WindowHit(hit_id, int(count), max(0.0, oldest_at + window_s - now))

    async def forget(self, key: str, hit_id: str) -> None:
        await self._redis.zrem(self._prefix + key, hit_id)

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        await self._redis.publish(f"{self._prefix}pub:{topic}", json.dumps(message, ensure_ascii=False))

    async def _read(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.psubscribe(f"{self._prefix}pub:*")
        self._ready.set()
        prefix_len = len(f"{self._prefix}pub:")
        try:
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message and message["type"] == "pmessage":
                    try:
                        payload = json.loads(message["data"])
                    except ValueError:
                        log.warning("dropped a malformed pub/sub message")
                        continue
                    self._fanout.deliver(message["channel"][prefix_len:], payload)
        finally:
            await pubsub.aclose()

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        if self._reader is None or self._reader.done():
            self._ready.clear()
            self._reader = asyncio.create_task(self._read(), name="redis-pubsub")
        await asyncio.wait_for(self._ready.wait(), 5)
        with self._fanout.listen(topic) as sub:
            yield sub

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._redis.aclose()
