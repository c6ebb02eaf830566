"""Workers (a Dispatcher, a BroadcastRunner: anything with run() and stop()) running for the length of a
test's block, and waiting for what they should have done: for the dispatcher's tests and the broadcast
harness alike."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

# A Dispatcher's waits shrunk for tests: retries, stream polls and maintenance within tens of milliseconds.
QUICK: dict[str, Any] = dict(backoff_base_s=0.05, backoff_max_s=0.2, block_ms=50, maintenance_s=0.05, stats_log_s=0)


@contextlib.asynccontextmanager
async def running(*workers: Any, timeout: float = 5, return_exceptions: bool = False) -> AsyncIterator[None]:
    """Each worker's run() as a task for the block; then stop() them all, wait (at most `timeout`
    seconds) for the tasks to end and close the senders a worker holds. A worker's error is raised
    here unless `return_exceptions`."""
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for w in workers:
            w.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=return_exceptions), timeout)
        for w in workers:
            for sender in getattr(w, "senders", {}).values():
                await sender.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)
