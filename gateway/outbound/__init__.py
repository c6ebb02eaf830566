"""Outbound messages: a durable, prioritised queue, a shared per-provider rate limit and the dispatch
worker that sends, retries and records. Redis when several processes share the work; in-memory twins
with the same contract for the single-process default. DESIGN.md states the delivery guarantee."""

from gateway.outbound.dispatcher import DeliveryLog, Dispatcher
from gateway.outbound.queue import Delivery, MemoryQueue, OutboundQueue, RedisStreamQueue, create_queue
from gateway.outbound.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter, create_limiter

__all__ = [
    "Delivery",
    "DeliveryLog",
    "Dispatcher",
    "MemoryQueue",
    "MemoryRateLimiter",
    "OutboundQueue",
    "RateLimiter",
    "RedisRateLimiter",
    "RedisStreamQueue",
    "create_limiter",
    "create_queue",
]
