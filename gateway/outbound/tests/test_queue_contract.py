"""One contract, two outbound queues: the in-process default and Redis Streams behave alike."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import pytest
import redis.asyncio as aioredis

from channels.base import Outgoing
from gateway.outbound.queue import MemoryQueue, OutboundQueue, RedisStreamQueue, create_queue

REDIS_URL = "redis://127.0.0.1:6379/0"
PHONE = "+8613912345678"


def msg(ref: str, priority: str = "reply", **fields) -> Outgoing:
    fields.setdefault("text", f"您好 {ref}")
    return Outgoing(channel="sms", to=PHONE, ref=ref, priority=priority, **fields)


class Backend:
    """Handles onto one queue. For Redis each handle is its own client, as each worker process would be."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.prefix = f"test:out:{uuid.uuid4().hex}"
        self._memory: MemoryQueue | None = None
        self._handles: list[RedisStreamQueue] = []

    def open(self) -> OutboundQueue:
        if self.kind == "memory":
            self._memory = self._memory or MemoryQueue()
            return self._memory
        handle = RedisStreamQueue(REDIS_URL, prefix=self.prefix)
        self._handles.append(handle)
        return handle

    async def close(self) -> None:
        for handle in self._handles:
            await handle.close()
        if self.kind == "redis":
            client = aioredis.from_url(REDIS_URL, decode_responses=True)
            keys = [k async for k in client.scan_iter(match=f"{{{self.prefix}}}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


def refs(deliveries) -> list[str]:
    return [d.message.ref for d in deliveries]


async def test_reads_emergency_then_reply_then_bulk(queue):
    for m in [msg("b1", "bulk"), msg("b2", "bulk"), msg("r1"), msg("e1", "emergency"), msg("r2")]:
        await queue.add(m)
    first = await queue.read("c1", count=2)
    assert refs(first) == ["e1", "r1"]
    assert [d.priority for d in first] == ["emergency", "reply"]
    assert refs(await queue.read("c1", count=10)) == ["r2", "b1", "b2"]
    assert await queue.read("c1", count=10) == []


async def test_messages_come_back_whole(queue):
    original = msg(
        "r1",
        "bulk",
        text="【克拉玛依市民服务】明天停水 🚰 请储水",
        segments=3,
        attempt=2,
        template={"template_id": "t1", "data": {"first": {"value": "通知"}}},
    )
    await queue.add(original)
    await queue.add_many([replace(original, ref="r2", priority="emergency")])
    second, first = await queue.read("c1", 5)
    assert first.message == original and first.times_delivered == 1
    assert second.message == replace(original, ref="r2", priority="emergency")


async def test_ack_removes_for_good(queue):
    await queue.add(msg("r1"))
    (delivery,) = await queue.read("c1", 5)
    assert await queue.ack(delivery) is True
    assert await queue.ack(delivery) is False
    await asyncio.sleep(0.05)
    assert await queue.reclaim("c2", idle_ms=0, count=10) == []
    assert all(counts == {"ready": 0, "pending": 0, "delayed": 0} for counts in (await queue.depth()).values())


async def test_unacked_entries_are_reclaimed_after_idle_and_not_before(queue):
    await queue.add(msg("done"))
    await queue.add(msg("lost"))
    done, lost = await queue.read("crashed", 5)
    await queue.ack(done)
    assert await queue.reclaim("c2", idle_ms=300, count=10) == []
    assert (await queue.depth())["reply"] == {"ready": 0, "pending": 1, "delayed": 0}
    await asyncio.sleep(0.35)
    (again,) = await queue.reclaim("c2", idle_ms=300, count=10)
    assert again.entry_id == lost.entry_id and again.message == lost.message and again.times_delivered == 2
    assert await queue.reclaim("c3", idle_ms=300, count=10) == []  # the take-over resets the idle time
    assert await queue.ack(again) is True


async def test_touch_keeps_a_slow_entry_with_its_consumer(queue):
    await queue.add(msg("slow"))
    (delivery,) = await queue.read("c1", 1)
    await asyncio.sleep(0.2)
    assert await queue.touch("c1", [delivery]) == 1
    assert await queue.reclaim("c2", idle_ms=150, count=10) == []
    await asyncio.sleep(0.2)
    assert refs(await queue.reclaim("c2", idle_ms=150, count=10)) == ["slow"]
    assert await queue.touch("c1", [delivery]) == 0  # a late heartbeat does not take it back


async def test_retry_later_then_promote_due(queue):
    await queue.add(msg("e1", "emergency", text="暴雨红色预警 ⚠️"))
    (delivery,) = await queue.read("c1", 1)
    assert await queue.retry_later(delivery, 0.3) is True
    assert (await queue.depth())["emergency"] == {"ready": 0, "pending": 0, "delayed": 1}
    assert await queue.retry_later(delivery, 0.3) is False  # acked already: not scheduled twice
    assert await queue.promote_due() == 0
    assert await queue.read("c1", 1) == []
    await asyncio.sleep(0.35)
    assert await queue.promote_due() == 1
    (again,) = await queue.read("c1", 1)
    assert again.priority == "emergency" and again.entry_id != delivery.entry_id
    assert again.message.attempt == 1 and again.message.text == "暴雨红色预警 ⚠️"
    assert await queue.retry_later(again, 0, attempt=1) is True  # an explicit attempt is kept as given
    await queue.promote_due()
    (third,) = await queue.read("c1", 1)
    assert third.message.attempt == 1


async def test_concurrent_promote_moves_each_entry_once(backend):
    first, second = backend.open(), backend.open()
    await first.add_many([msg(f"r{i}") for i in range(60)])
    held = await first.read("c1", 100)
    assert len(held) == 60
    for delivery in held:
        await first.retry_later(delivery, 0)
    moved = await asyncio.gather(first.promote_due(), second.promote_due(), first.promote_due(), second.promote_due())
    assert sum(moved) == 60
    again = await second.read("c2", 100)
    assert sorted(refs(again)) == sorted(f"r{i}" for i in range(60))
    assert (await first.depth())["reply"] == {"ready": 0, "pending": 60, "delayed": 0}


async def test_replace_acks_and_enqueues_in_one_step(queue):
    await queue.add(Outgoing(channel="wechat", to="oOPENID123456", text="您的预约已确认", ref="m1"))
    (delivery,) = await queue.read("c1", 1)
    fallback = Outgoing(channel="sms", to=PHONE, text="您的预约已确认", ref="m1")
    assert await queue.replace(delivery, fallback) is True
    assert await queue.replace(delivery, fallback) is False
    (sms,) = await queue.read("c1", 5)
    assert sms.message == fallback


async def test_send_claims_are_exclusive_owned_and_expire(queue):
    assert await queue.claim_send("m1", "a", 300) is True
    assert await queue.claim_send("m1", "b", 300) is False
    await queue.release_send("m1", "b")  # not the owner: no effect
    assert await queue.claim_send("m1", "c", 300) is False
    await queue.release_send("m1", "a")
    assert await queue.claim_send("m1", "c", 300) is True
    await asyncio.sleep(0.35)
    assert await queue.claim_send("m1", "d", 300) is True


async def test_blocking_read_wakes_when_a_message_arrives(queue):
    started = time.monotonic()
    assert await queue.read("c1", 5, block_ms=200) == []
    assert time.monotonic() - started >= 0.15
    reader = asyncio.create_task(queue.read("c1", 5, block_ms=5000))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await queue.add(msg("e1", "emergency"))
    assert refs(await asyncio.wait_for(reader, 2)) == ["e1"]
    assert time.monotonic() - started < 1.0


async def test_add_many_of_10000_is_quick(queue):
    messages = [
        msg(f"recipient:{i}", "bulk", text="【克拉玛依市民服务】明日9时起白碱滩区停水，请提前储水")
        for i in range(10_000)
    ]
    started = time.monotonic()
    added = await queue.add_many(messages)
    elapsed = time.monotonic() - started
    assert added == 10_000
    assert elapsed < 3.0, f"add_many of 10,000 took {elapsed:.2f} s"
    assert (await queue.depth())["bulk"] == {"ready": 10_000, "pending": 0, "delayed": 0}
    assert refs(await queue.read("c1", 3)) == ["recipient:0", "recipient:1", "recipient:2"]


async def test_unknown_priority_is_refused(queue):
    with pytest.raises(ValueError):
        await queue.add(msg("x", "urgent"))
    with pytest.raises(ValueError):
        await queue.add_many([msg("y"), msg("x", "urgent")])


async def test_ping(queue):
    assert await queue.ping() is True


async def test_create_queue_picks_the_backend():
    assert isinstance(create_queue(None), MemoryQueue)
    queue = create_queue(REDIS_URL)
    assert isinstance(queue, RedisStreamQueue)
    await queue.close()


async def test_redis_streams_keep_only_unacked_entries_and_survive_deletion():
    backend = Backend("redis")
    queue = backend.open()
    try:
        await queue.add_many([msg(f"r{i}") for i in range(5)])
        for delivery in await queue.read("c1", 10):
            await queue.ack(delivery)
        client = aioredis.from_url(REDIS_URL, decode_responses=True)
        assert await client.xlen(queue.keys[1]) == 0  # acked entries are deleted, not left to a trim
        await client.delete(*queue.keys)  # an operator flushed the keys under a running worker
        await client.aclose()
        assert await queue.read("c1", 10, block_ms=10) == []
        await queue.add(msg("after"))
        assert refs(await queue.read("c1", 10)) == ["after"]
    finally:
        await backend.close()
