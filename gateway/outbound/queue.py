"""The outbound queue: durable, prioritised, at-least-once hand-over of messages to dispatch workers.

Two implementations behind one protocol, checked by one contract suite (tests/test_queue_contract.py):
RedisStreamQueue for several gateway and worker processes, MemoryQueue for the single-process default.

Redis layout (one hash tag, so every multi-key script also works on a cluster):
  {prefix}:emergency | :reply | :bulk   streams, one consumer group; entries are XDEL'd once acked, so a
                                         stream holds only unread and in-flight entries and needs no trim
  {prefix}:<priority>:delayed            ZSET of retries, scored by due time (Redis server clock, ms)
  {prefix}:sending:<ref>                 short-lived send claims (SET NX PX, owner-checked release)
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import Field, dataclass, replace
from typing import Any, ClassVar, Generic, Protocol, Self, cast

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT
from typing_extensions import TypeVar

from channels.base import PRIORITIES, Outgoing
from gateway.batch import Batch
from gateway.metrics import count_queued
from gateway.state.redis import connect

T = TypeVar("T")


class Entry(Protocol):
    """What a queue carries: Outgoing, or the inbox's InboxEntry. A dataclass, so a retry is a copy."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    @property
    def priority(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    def as_fields(self) -> dict[str, str]: ...

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> Self: ...


E = TypeVar("E", bound=Entry, default=Outgoing)

__all__ = [
    "PRIORITIES",
    "Delivery",
    "Entry",
    "MemoryQueue",
    "OutboundQueue",
    "RedisStreamQueue",
    "create_queue",
]


@dataclass(frozen=True)
class Delivery(Generic[E]):
    """One queue entry handed to one consumer. Ack it, retry it later or replace it; an entry left
    alone stays pending and another consumer reclaims it once it has been idle long enough."""

    entry_id: str
    priority: str
    message: E
    times_delivered: int = 1  # how often it was handed out: above 1 means its earlier holders vanished


class OutboundQueue(Protocol[E]):
    async def add(self, message: E) -> str:
        """Enqueue on the stream of message.priority; returns the entry id."""

    async def add_many(self, messages: Iterable[E]) -> int:
        """Enqueue many (a broadcast) in few round trips; returns how many. Not atomic: after an error
        some may be queued (enqueue again: the delivery log skips what was sent)."""

    async def read(self, consumer: str, count: int = 1, block_ms: int = 0) -> list[Delivery[E]]:
        """New entries, emergency first, then reply, then bulk. Waits up to block_ms when there are none;
        an entry that arrives while waiting may come with one from another stream (≤ count per stream)."""

    async def ack(self, delivery: Delivery[E]) -> bool:
        """Done with it: removed for good. False if it was no longer pending (someone else acked it)."""

    async def retry_later(self, delivery: Delivery[E], delay_s: float, attempt: int | None = None) -> bool:
        """Atomically ack the entry and schedule its message again after delay_s, carrying `attempt`
        (default: one more than before). False, and nothing scheduled, if it was no longer pending."""

    async def replace(self, delivery: Delivery[E], message: E) -> bool:
        """Atomically ack the entry and enqueue another message in its place (a fallback). False, and
        nothing enqueued, if it was no longer pending."""

    async def promote_due(self, limit: int = 1000) -> int:
        """Move retries whose time has come back onto their streams; safe to run from every worker."""

    async def reclaim(self, consumer: str, idle_ms: int, count: int = 10) -> list[Delivery[E]]:
        """Take over entries handed out at least idle_ms ago and never acked (their consumer died)."""

    async def touch(self, consumer: str, deliveries: Iterable[Delivery[E]]) -> int:
        """Reset the idle time of entries this consumer still holds, so a slow send is not reclaimed."""

    async def claim_send(self, ref: str, token: str, ttl_ms: int) -> bool:
        """A short-lived lock on one message ref while it is being sent."""

    async def release_send(self, ref: str, token: str) -> None:
        """Release the claim if `token` still holds it."""

    async def depth(self) -> dict[str, dict[str, int]]:
        """Per priority: ready (unread), pending (handed out, unacked), delayed (waiting to retry)."""

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def create_queue(redis_url: str | None) -> OutboundQueue:
    """Redis Streams when a Redis URL is configured, otherwise the in-process queue."""
    if not redis_url:
        return MemoryQueue()
    return RedisStreamQueue(redis_url)


def _check_priority(priority: str) -> str:
    if priority not in PRIORITIES:
        raise ValueError(f"unknown priority {priority!r}; expected one of {PRIORITIES}")
    return priority


def _next_attempt(delivery: Delivery[E], attempt: int | None) -> E:
    return replace(delivery.message, attempt=delivery.message.attempt + 1 if attempt is None else attempt)


# --- Redis ------------------------------------------------------------------------------------------

# Ack and schedule in one step: a crash can neither lose the message (acked, not scheduled) nor double
# it (scheduled, still pending). Only an entry that was still pending is scheduled, so two holders of
# one reclaimed entry cannot both put it back.
_RETRY_LATER = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], string.format('%d', now_ms + tonumber(ARGV[3])), ARGV[4])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# Scripts run one at a time, so concurrent promoters never move one entry twice.
_PROMOTE = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local item = cjson.decode(member)
  redis.call('XADD', KEYS[1], '*', unpack(item['f']))
  redis.call('ZREM', KEYS[2], member)
end
return #due
"""

_REPLACE = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""

# XCLAIM by the current owner resets the idle time; JUSTID leaves the delivery counter alone. The owner
# check keeps a late heartbeat from taking back an entry another consumer has already reclaimed.
_TOUCH = """
local n = 0
for i = 3, #ARGV do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_ADD_MANY = """
for i = 1, #ARGV do
  local flat = {}
  for k, v in pairs(cjson.decode(ARGV[i])) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  redis.call('XADD', KEYS[1], '*', unpack(flat))
end
return #ARGV
"""

_ADD_CHUNK = 500  # entries per script call in add_many: ~6 ms of Redis time, so other clients barely wait


def _flat(message: Entry) -> list[str]:
    return [item for pair in message.as_fields().items() for item in pair]


def _stream_items(response: Any) -> Iterable[tuple[str, list[tuple[str, dict[str, str] | None]]]]:
    # RESP2 answers a list of [stream, entries]; RESP3 a mapping.
    if not response:
        return []
    return response.items() if isinstance(response, dict) else response


class RedisStreamQueue(Generic[E]):
    """Redis Streams with one consumer group: durable across worker crashes and restarts."""

    def __init__(
        self,
        redis: str | aioredis.Redis,
        prefix: str = "citygw:out",
        group: str = "dispatch",
        entry_type: type[E] = Outgoing,  # type: ignore[assignment]  # E defaults to Outgoing (mypy #3737)
    ) -> None:
        self._entry_type = entry_type
        if isinstance(redis, str):
            self._redis = connect(redis)
            self._owned = True
        else:
            if not redis.connection_pool.connection_kwargs.get("decode_responses"):
                raise ValueError("RedisStreamQueue needs a client created with decode_responses=True")
            self._redis, self._owned = redis, False
        base = prefix if "{" in prefix else "{" + prefix + "}"
        self.group = group
        self._streams = {p: f"{base}:{p}" for p in PRIORITIES}
        self._delayed = {p: f"{base}:{p}:delayed" for p in PRIORITIES}
        self._claims = f"{base}:sending:"
        self._priority_of = {key: p for p, key in self._streams.items()}
        self._cursors = dict.fromkeys(PRIORITIES, "0-0")
        self._ready = False
        self._add_many = self._redis.register_script(_ADD_MANY)
        self._retry_later = self._redis.register_script(_RETRY_LATER)
        self._promote = self._redis.register_script(_PROMOTE)
        self._replace = self._redis.register_script(_REPLACE)
        self._touch = self._redis.register_script(_TOUCH)
        self._release = self._redis.register_script(_RELEASE)
        # every delivery is claimed, released and acked: concurrent sends share a round trip for each
        self._acks: Batch[Delivery[E], bool] = Batch(self._ack_many)
        self._claiming: Batch[tuple[str, str, int], bool] = Batch(self._claim_many)
        self._releasing: Batch[tuple[str, str], None] = Batch(self._release_many)

    @property
    def keys(self) -> list[str]:
        """Every key this queue writes except send claims (for operators and test clean-up)."""
        return [*self._streams.values(), *self._delayed.values()]

    async def _ensure_groups(self, force: bool = False) -> None:
        if self._ready and not force:
            return
        for stream in self._streams.values():
            try:
                # id 0: entries added before the group existed are still delivered
                await self._redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._ready = True

    async def add(self, message: E) -> str:
        await self._ensure_groups()
        fields = cast("dict[FieldT, EncodableT]", message.as_fields())
        entry_id = cast(str, await self._redis.xadd(self._streams[_check_priority(message.priority)], fields))
        count_queued([message])
        return entry_id

    async def add_many(self, messages: Iterable[E]) -> int:
        await self._ensure_groups()
        messages = list(messages)
        added = 0
        batch: list[E] = []

        async def flush() -> None:
            nonlocal added
            # One script call per run of same-priority messages, each message one JSON argument: redis-py
            # spends more time packing 16 arguments per pipelined XADD than Redis spends adding the entry
            # (measured: 12,000/s pipelined against 38,000/s this way).
            for priority, run in itertools.groupby(batch, key=lambda m: m.priority):
                encoded = [json.dumps(m.as_fields()) for m in run]
                added += int(await self._add_many(keys=[self._streams[priority]], args=encoded))
            batch.clear()

        for message in messages:
            _check_priority(message.priority)
            batch.append(message)
            if len(batch) >= _ADD_CHUNK:
                await flush()
        if batch:
            await flush()
        count_queued(messages)
        return added

    def _deliveries(self, response: Any, counts: dict[str, int] | None = None, default: int = 1) -> list[Delivery[E]]:
        found: list[Delivery[E]] = []
        for stream, entries in _stream_items(response):
            priority = self._priority_of[stream]
            for entry_id, fields in entries:
                if fields:  # a deleted entry still listed in the group's pending list has no fields
                    message = self._entry_type.from_fields(fields)
                    found.append(Delivery(entry_id, priority, message, (counts or {}).get(entry_id, default)))
        return found

    async def _regrouping(self, call: Callable[[], Awaitable[T]]) -> T:
        await self._ensure_groups()
        try:
            return await call()
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # the streams were deleted under us (FLUSHDB, an operator): recreate them and carry on
            await self._ensure_groups(force=True)
            return await call()

    async def read(self, consumer: str, count: int = 1, block_ms: int = 0) -> list[Delivery[E]]:
        if count <= 0:
            return []
        return await self._regrouping(lambda: self._read(consumer, count, block_ms))

    async def _read(self, consumer: str, count: int, block_ms: int) -> list[Delivery[E]]:
        found: list[Delivery[E]] = []
        for priority in PRIORITIES:  # one stream at a time, so a lower priority never fills the batch first
            response = await self._redis.xreadgroup(
                self.group, consumer, {self._streams[priority]: ">"}, count=count - len(found)
            )
            found.extend(self._deliveries(response))
            if len(found) >= count:
                return found
        if found or block_ms <= 0:
            return found
        response = await self._redis.xreadgroup(
            self.group, consumer, dict.fromkeys(self._streams.values(), ">"), count=count, block=block_ms
        )
        woken = self._deliveries(response)
        woken.sort(key=lambda d: PRIORITIES.index(d.priority))
        return woken

    async def ack(self, delivery: Delivery[E]) -> bool:
        return await self._acks.submit(delivery)

    async def _ack_many(self, deliveries: list[Delivery[E]]) -> list[bool]:
        async with self._redis.pipeline(transaction=True) as pipe:
            for delivery in deliveries:
                stream = self._streams[delivery.priority]
                pipe.xack(stream, self.group, delivery.entry_id)
                pipe.xdel(stream, delivery.entry_id)
            replies = await pipe.execute()
        return [bool(acked) for acked in replies[0::2]]

    async def retry_later(self, delivery: Delivery[E], delay_s: float, attempt: int | None = None) -> bool:
        message = _next_attempt(delivery, attempt)
        # the source entry id makes the member unique; the fields travel inside it
        member = json.dumps({"src": delivery.entry_id, "f": _flat(message)}, ensure_ascii=False)
        keys = [self._streams[delivery.priority], self._delayed[message.priority]]
        args: list[EncodableT] = [self.group, delivery.entry_id, max(0, int(delay_s * 1000)), member]
        return bool(await self._retry_later(keys=keys, args=args))

    async def replace(self, delivery: Delivery[E], message: E) -> bool:
        await self._ensure_groups()
        keys = [self._streams[delivery.priority], self._streams[_check_priority(message.priority)]]
        return bool(await self._replace(keys=keys, args=[self.group, delivery.entry_id, *_flat(message)]))

    async def promote_due(self, limit: int = 1000) -> int:
        await self._ensure_groups()
        moved = 0
        for priority in PRIORITIES:
            while True:  # batches keep each script short: Redis serves nobody else while it runs
                n = int(await self._promote(keys=[self._streams[priority], self._delayed[priority]], args=[limit]))
                moved += n
                if n < limit:
                    break
        return moved

    async def reclaim(self, consumer: str, idle_ms: int, count: int = 10) -> list[Delivery[E]]:
        if count <= 0:
            return []
        return await self._regrouping(lambda: self._reclaim(consumer, idle_ms, count))

    async def _reclaim(self, consumer: str, idle_ms: int, count: int) -> list[Delivery[E]]:
        found: list[Delivery[E]] = []
        for priority in PRIORITIES:
            stream = self._streams[priority]
            # XAUTOCLAIM walks the pending list like SCAN, looking at up to 10 × COUNT entries a call; the
            # cursor carries on where the last call stopped, so a long list of live entries cannot hide
            # idle ones behind it. A few rounds a call bound the work.
            for _ in range(4):
                cursor, entries, *_ = await self._redis.xautoclaim(
                    stream, self.group, consumer, idle_ms, self._cursors[priority], count=count - len(found)
                )
                self._cursors[priority] = cursor
                claimed = [(entry_id, fields) for entry_id, fields in entries if fields]
                if len(claimed) < len(entries):  # deleted under a pending entry (older servers): drop it
                    await self._redis.xack(stream, self.group, *(e for e, fields in entries if not fields))
                if claimed:
                    counts = await self._counts(stream, consumer, [entry_id for entry_id, _ in claimed])
                    found.extend(self._deliveries([[stream, claimed]], counts, default=2))
                if cursor == "0-0" or len(found) >= count:
                    break
            if len(found) >= count:
                break
        return found

    async def _counts(self, stream: str, consumer: str, ids: Sequence[str]) -> dict[str, int]:
        # our own in-flight entries may lie in the same id range, hence the head room in count
        rows = await self._redis.xpending_range(stream, self.group, ids[0], ids[-1], len(ids) + 100, consumer)
        return {str(row["message_id"]): int(row["times_delivered"]) for row in rows}

    async def touch(self, consumer: str, deliveries: Iterable[Delivery[E]]) -> int:
        by_stream: dict[str, list[str]] = {}
        for delivery in deliveries:
            by_stream.setdefault(self._streams[delivery.priority], []).append(delivery.entry_id)
        touched = 0
        for stream, ids in by_stream.items():
            touched += int(await self._touch(keys=[stream], args=[self.group, consumer, *ids]))
        return touched

    async def claim_send(self, ref: str, token: str, ttl_ms: int) -> bool:
        return await self._claiming.submit((ref, token, ttl_ms))

    async def _claim_many(self, claims: list[tuple[str, str, int]]) -> list[bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for ref, token, ttl_ms in claims:
                pipe.set(self._claims + ref, token, nx=True, px=max(1, int(ttl_ms)))
            return [bool(claimed) for claimed in await pipe.execute()]

    async def release_send(self, ref: str, token: str) -> None:
        await self._releasing.submit((ref, token))

    async def _release_many(self, claims: list[tuple[str, str]]) -> list[None]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for ref, token in claims:
                await self._release(keys=[self._claims + ref], args=[token], client=pipe)
            await pipe.execute()
        return [None] * len(claims)

    async def depth(self) -> dict[str, dict[str, int]]:
        return await self._regrouping(self._depth)

    async def _depth(self) -> dict[str, dict[str, int]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for priority in PRIORITIES:
                pipe.xlen(self._streams[priority])
                pipe.xpending(self._streams[priority], self.group)
                pipe.zcard(self._delayed[priority])
            replies = await pipe.execute()
        result = {}
        for i, priority in enumerate(PRIORITIES):
            length, pending, delayed = replies[3 * i : 3 * i + 3]
            pending_n = int(pending["pending"])
            # acked entries are deleted, so the stream holds exactly the unread and the pending ones
            result[priority] = {"ready": int(length) - pending_n, "pending": pending_n, "delayed": int(delayed)}
        return result

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def close(self) -> None:
        if self._owned:
            await self._redis.aclose()


# --- in-process -------------------------------------------------------------------------------------


@dataclass
class _Entry(Generic[E]):
    entry_id: str
    priority: str
    message: E
    consumer: str = ""
    handed_at: float = 0.0
    times_delivered: int = 0


class MemoryQueue(Generic[E]):
    """The same semantics inside one process, for the embedded default. Not durable: what is queued is
    lost when the process stops (the delivery log still knows which messages were never sent)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._ready: dict[str, deque[_Entry[E]]] = {p: deque() for p in PRIORITIES}
        self._pending: dict[str, dict[str, _Entry[E]]] = {p: {} for p in PRIORITIES}
        self._delayed: dict[str, list[tuple[float, int, E]]] = {p: [] for p in PRIORITIES}
        self._claims: dict[str, tuple[str, float]] = {}
        self._seq = itertools.count()
        self._changed = asyncio.Condition()

    def _new_id(self) -> str:
        return f"{int(time.time() * 1000)}-{next(self._seq)}"

    def _push(self, message: E) -> str:
        entry = _Entry(self._new_id(), _check_priority(message.priority), message)
        self._ready[entry.priority].append(entry)
        return entry.entry_id

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def add(self, message: E) -> str:
        entry_id = self._push(message)
        await self._wake()
        count_queued([message])
        return entry_id

    async def add_many(self, messages: Iterable[E]) -> int:
        messages = list(messages)
        added = sum(1 for m in messages if self._push(m))
        await self._wake()
        count_queued(messages)
        return added

    def _take(self, consumer: str, count: int) -> list[Delivery[E]]:
        found: list[Delivery[E]] = []
        now = self._clock()
        for priority in PRIORITIES:
            ready = self._ready[priority]
            while ready and len(found) < count:
                entry = ready.popleft()
                entry.consumer, entry.handed_at, entry.times_delivered = consumer, now, 1
                self._pending[priority][entry.entry_id] = entry
                found.append(Delivery(entry.entry_id, priority, entry.message, 1))
        return found

    async def read(self, consumer: str, count: int = 1, block_ms: int = 0) -> list[Delivery[E]]:
        if count <= 0:
            return []
        found = self._take(consumer, count)
        if found or block_ms <= 0:
            return found
        try:
            async with self._changed:
                await asyncio.wait_for(self._changed.wait_for(lambda: any(self._ready.values())), block_ms / 1000)
        except TimeoutError:
            return []
        return self._take(consumer, count)

    def _remove(self, delivery: Delivery[E]) -> _Entry[E] | None:
        return self._pending[delivery.priority].pop(delivery.entry_id, None)

    async def ack(self, delivery: Delivery[E]) -> bool:
        return self._remove(delivery) is not None

    async def retry_later(self, delivery: Delivery[E], delay_s: float, attempt: int | None = None) -> bool:
        if self._remove(delivery) is None:
            return False
        message = _next_attempt(delivery, attempt)
        heapq.heappush(self._delayed[message.priority], (self._clock() + max(0.0, delay_s), next(self._seq), message))
        return True

    async def replace(self, delivery: Delivery[E], message: E) -> bool:
        _check_priority(message.priority)
        if self._remove(delivery) is None:
            return False
        await self.add(message)
        return True

    async def promote_due(self, limit: int = 1000) -> int:
        now, moved = self._clock(), 0
        for priority in PRIORITIES:
            delayed = self._delayed[priority]
            while delayed and delayed[0][0] <= now:
                self._push(heapq.heappop(delayed)[2])
                moved += 1
        if moved:
            await self._wake()
        return moved

    async def reclaim(self, consumer: str, idle_ms: int, count: int = 10) -> list[Delivery[E]]:
        found: list[Delivery[E]] = []
        now = self._clock()
        for priority in PRIORITIES:
            for entry in self._pending[priority].values():
                if len(found) >= count:
                    return found
                if now - entry.handed_at >= idle_ms / 1000:
                    entry.consumer, entry.handed_at = consumer, now
                    entry.times_delivered += 1
                    found.append(Delivery(entry.entry_id, priority, entry.message, entry.times_delivered))
        return found

    async def touch(self, consumer: str, deliveries: Iterable[Delivery[E]]) -> int:
        touched, now = 0, self._clock()
        for delivery in deliveries:
            entry = self._pending[delivery.priority].get(delivery.entry_id)
            if entry is not None and entry.consumer == consumer:
                entry.handed_at = now
                touched += 1
        return touched

    async def claim_send(self, ref: str, token: str, ttl_ms: int) -> bool:
        now = self._clock()
        held = self._claims.get(ref)
        if held is not None and held[1] > now:
            return False
        self._claims[ref] = (token, now + ttl_ms / 1000)
        return True

    async def release_send(self, ref: str, token: str) -> None:
        held = self._claims.get(ref)
        if held is not None and held[0] == token:
            del self._claims[ref]

    async def depth(self) -> dict[str, dict[str, int]]:
        return {
            p: {"ready": len(self._ready[p]), "pending": len(self._pending[p]), "delayed": len(self._delayed[p])}
            for p in PRIORITIES
        }

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
