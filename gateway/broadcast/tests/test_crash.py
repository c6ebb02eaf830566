"""Crashes during a broadcast: whatever step a worker dies at, the next one finishes the broadcast
with every recipient messaged once — counted at the local Twilio and WeChat servers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from gateway.broadcast.runner import FANOUT_DONE, BroadcastRunner
from gateway.db.models import BroadcastRecipient
from gateway.outbound.queue import MemoryQueue
from gateway.state import MemoryState
from tests.stack import REDIS_URL

from .conftest import ListOutbox, Person, World
from .harness import Line, line, running, until
from .test_service import create, reload, rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:twilio")  # the library's own


def members(world: World) -> list[Person]:
    """The crash tests' audience: 24 listed numbers, a few of them WeChat users, one opted out."""
    with_phone = [p for p in world.people if p.phone]
    return with_phone[:24]


def audience(world: World) -> dict[str, object]:
    return {"type": "list", "phones": [p.phone for p in members(world)]}


def reachable(world: World) -> tuple[set[str], set[str]]:
    """Addresses that must get exactly one message: (phones, openids) of a notice to AUDIENCE."""
    channels = [p.channel(emergency=False) for p in members(world)]
    return {a for c, a in channels if c == "sms"}, {a for c, a in channels if c == "wechat"}


def skipped(world: World) -> int:
    return sum(p.channel(emergency=False)[0] in ("opted_out", "none") for p in members(world))


def assert_exactly_once(world: World, pipe: Line) -> None:
    phones, openids = reachable(world)
    sms, wechat = pipe.sms_count(), pipe.wechat_count()
    assert set(sms) == phones, f"missing {len(phones - set(sms))}, unexpected {len(set(sms) - phones)}"
    assert set(wechat) == openids
    twice = [a for a, n in (sms + wechat).items() if n > 1]
    assert not twice, f"{len(twice)} recipients got more than one message"


async def test_resume_after_dying_between_any_two_steps(world: World):
    async with line(world, broadcast_batch=4) as pipe:
        notice = await create(world, audience=audience(world), settings=pipe.settings)
        first = BroadcastRunner(pipe.settings, world.sessions, MemoryState(), pipe.queue)
        content = await first._begin(notice.id)
        await first._fanout_step(notice.id, emergency=False)
        await first._enqueue_step(notice.id, content)  # batch 1: rows, queued, mark moved
        await first._fanout_step(notice.id, emergency=False)
        async with world.sessions() as db:  # batch 2: queued, then death before the mark moved
            batch = await first._queued(db, notice.id, (await reload(world, notice.id)).enqueued_upto)
        await pipe.queue.add_many(first._messages(content, batch))
        await first._fanout_step(notice.id, emergency=False)  # batch 3: rows committed, never queued
        mid = await reload(world, notice.id)
        assert 0 < mid.fanout_cursor < FANOUT_DONE
        assert await pipe.runner.run_broadcast(notice.id)  # another worker takes over …
        dispatcher = pipe.dispatcher()
        async with running(pipe.runner, dispatcher):  # … and the dispatchers send
            await pipe.until(notice.id)
            await pipe.drained()
        assert_exactly_once(world, pipe)
        stats = dispatcher.stats()  # batch 2 went to the queue twice, to people once
        assert stats["skipped"] + stats["busy"] >= len(batch)
        assert len(await rows(world, notice.id)) == len(members(world))


@pytest.mark.parametrize("world", ["postgres"], indirect=True)  # several worker processes: PostgreSQL + Redis
async def test_a_killed_worker_is_resumed_by_another_after_its_lease(world: World):
    async with line(world) as pipe:
        notice = await create(world, audience=audience(world), settings=pipe.settings)
        queue_prefix = pipe.queue_prefix
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.broadcast.tests.fanout_proc",
            "--db", world.url, "--redis", REDIS_URL, "--queue-prefix", queue_prefix,
            "--lease-prefix", pipe.settings.queue_prefix, "--batch", "2", "--lease-s", "2", "--pause-s", "0.05",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        dispatcher = pipe.dispatcher()
        try:
            async with running(dispatcher):  # sending from the start, as separate dispatch workers would
                assert (await asyncio.wait_for(worker.stdout.readline(), 30)).strip() == b"READY"
                batches = 0
                while batches < 3:  # let it fan out a few batches, then kill it mid-broadcast
                    line_ = await asyncio.wait_for(worker.stdout.readline(), 30)
                    batches += line_.startswith(b"ENQUEUED")
                os.killpg(worker.pid, signal.SIGKILL)
                await worker.wait()
                mid = await reload(world, notice.id)
                assert mid.status == "sending" and 0 < mid.fanout_cursor < FANOUT_DONE
                # the dead worker's lease holds another runner off until it lapses (2 s) …
                assert await pipe.runner.run_broadcast(notice.id) is False
                async with running(pipe.runner):  # … then it resumes and finishes
                    await pipe.until(notice.id, timeout=30)
                    await pipe.drained()
        finally:
            if worker.returncode is None:
                os.killpg(worker.pid, signal.SIGKILL)
                await worker.wait()
        assert_exactly_once(world, pipe)
        async with world.sessions() as db:
            total = (
                await db.exec(select(func.count()).where(col(BroadcastRecipient.broadcast_id) == notice.id))
            ).scalar_one()
        assert total == len(reachable(world)[0]) + len(reachable(world)[1]) + skipped(world)
        assert total == (await reload(world, notice.id)).recipient_total


@pytest.mark.parametrize("world", ["sqlite"], indirect=True)  # the in-process queue: the embedded deployment
async def test_a_restart_without_redis_requeues_what_the_dead_process_held(world: World):
    async with line(world, broadcast_batch=4) as pipe:
        assert isinstance(pipe.queue, MemoryQueue)
        notice = await create(world, audience=audience(world), settings=pipe.settings)
        before = BroadcastRunner(pipe.settings, world.sessions, MemoryState(), pipe.queue, durable_queue=False)
        content = await before._begin(notice.id)
        for _ in range(4):
            await before._fanout_step(notice.id, emergency=False)
            await before._enqueue_step(notice.id, content)
        async with running(pipe.dispatcher(concurrency=2)):
            await until(lambda: len(pipe.twilio.messages) >= 5)
        # the process dies: its queue with it. The restarted gateway has a new, empty one.
        pipe.queue = MemoryQueue()
        pipe.deliveries.recipients.enqueue = pipe.queue.add
        after = BroadcastRunner(
            pipe.settings, world.sessions, MemoryState(), pipe.queue, durable_queue=False, poll_s=0.1, idle_s=0.2
        )
        async with running(after, pipe.dispatcher()):
            await pipe.until(notice.id)
            await pipe.drained()
        assert_exactly_once(world, pipe)


async def test_two_runners_without_a_shared_lease_still_write_each_recipient_once(world: World):
    settings = world.settings(broadcast_batch=3)
    notice = await create(world, audience=audience(world), settings=settings)
    outboxes = [ListOutbox(), ListOutbox()]
    # separate state stores (a lease lost to a long pause): only the conditional cursor update keeps
    # them apart; both may queue a batch, and the dispatcher sends each ref once
    runners = [BroadcastRunner(settings, world.sessions, MemoryState(), box) for box in outboxes]
    await asyncio.gather(*(r.run_broadcast(notice.id) for r in runners))
    recorded = await rows(world, notice.id)
    assert sorted(r.citizen_id for r in recorded) == sorted(p.id for p in members(world))
    assert (await reload(world, notice.id)).recipient_total == len(recorded)
    queued = Counter(m.ref for box in outboxes for m in box.messages)
    assert set(queued) == {f"recipient:{r.id}" for r in recorded if r.status == "queued"}


async def test_a_shared_lease_lets_one_runner_fan_out(world: World):
    settings = world.settings(broadcast_batch=3)
    notice = await create(world, audience=audience(world), settings=settings)
    state, outboxes = MemoryState(), [ListOutbox(), ListOutbox()]
    runners = [BroadcastRunner(settings, world.sessions, state, box) for box in outboxes]
    results = await asyncio.gather(*(r.run_broadcast(notice.id) for r in runners))
    assert sorted(results) == [False, True]
    queued = Counter(m.ref for box in outboxes for m in box.messages)
    assert len(queued) == sum(queued.values()) == sum(r.status == "queued" for r in await rows(world, notice.id))
