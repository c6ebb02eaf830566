"""Group commit: many concurrent callers, one round trip to the database or Redis.

The dispatcher handles dozens of messages at once and each asks the same small things (is recipient
N still due? record that N was sent; claim, release and ack its queue entry). Asked one by one, a
250,000-recipient broadcast spends most of its time in per-row round trips. A Batch collects what
arrives while the previous round trip runs and sends it as one statement or pipeline; a caller still waits for its own answer (a send is
recorded before its queue entry is acked), and a lone caller goes at once, so nothing waits on a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batch(Generic[Item, Result]):
    """`run` takes a list of items and returns one result per item, in order. If it raises, every
    caller of that batch gets the exception (and may retry: the next batch is a new statement)."""

    def __init__(self, run: Callable[[list[Item]], Awaitable[Sequence[Result]]], max_size: int = 500) -> None:
        self.run, self.max_size = run, max_size
        self._waiting: list[tuple[Item, asyncio.Future[Result]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not future.get_loop():
            self._flusher = asyncio.create_task(self._flush())
        # a caller that gives up cancels only its own future; the statement still runs for the others
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let callers woken in the same loop turn join the first batch
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_size], self._waiting[self.max_size :]
            try:
                results = await self.run([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"batch returned {len(results)} results for {len(batch)} items")
            except asyncio.CancelledError:  # shutting down: nobody is left to answer
                for _, future in batch + self._waiting:
                    future.cancel()
                self._waiting = []
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
