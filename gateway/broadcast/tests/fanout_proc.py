"""A broadcast worker in a process of its own, for the crash tests: a BroadcastRunner on Redis (queue
and lease) that reports each batch it enqueues on stdout, so the test knows when to SIGKILL it.

    python -m gateway.broadcast.tests.fanout_proc --db URL --redis URL --queue-prefix P --lease-prefix L
        [--batch N] [--lease-s S] [--pause-s X]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import create_async_engine

from channels.base import Outgoing
from gateway.broadcast.runner import BroadcastRunner
from gateway.config import Settings
from gateway.db.engine import async_engine, session_factory
from gateway.outbound.queue import RedisStreamQueue
from gateway.state.redis import RedisState

from .conftest import FIXED_NOW


def say(line: str) -> None:
    print(line, flush=True)


class ReportingOutbox:
    """The Redis queue, slowed down a little and reporting each batch, so a kill lands mid-fan-out."""

    def __init__(self, queue: RedisStreamQueue, pause_s: float) -> None:
        self.queue, self.pause_s = queue, pause_s

    async def add(self, message: Outgoing) -> str:
        return await self.queue.add(message)

    async def add_many(self, messages: Iterable[Outgoing]) -> int:
        await asyncio.sleep(self.pause_s)
        added = await self.queue.add_many(messages)
        say(f"ENQUEUED {added}")
        return added

    async def depth(self) -> dict[str, dict[str, int]]:
        return await self.queue.depth()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--queue-prefix", required=True)
    parser.add_argument("--lease-prefix", required=True)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--lease-s", type=int, default=2)
    parser.add_argument("--pause-s", type=float, default=0.05)
    args = parser.parse_args()
    settings = Settings(
        _env_file=None, database_url=args.db, fixed_now=FIXED_NOW, queue_prefix=args.lease_prefix, sms_rate=0
    )
    if args.db.startswith("sqlite"):
        engine = async_engine(args.db)
    else:  # as the tests' engine: no fsync wait per commit
        url = args.db.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_async_engine(url, connect_args={"options": "-c synchronous_commit=off"})
    queue = RedisStreamQueue(args.redis, prefix=args.queue_prefix)
    runner = BroadcastRunner(
        settings,
        session_factory(engine),
        RedisState(args.redis),
        ReportingOutbox(queue, args.pause_s),
        batch=args.batch,
        lease_s=args.lease_s,
        poll_s=0.1,
        backlog=10**9,  # nothing dispatches here: the whole audience stays in the queue to be counted
    )
    say("READY")
    await runner.run()


if __name__ == "__main__":
    asyncio.run(main())
