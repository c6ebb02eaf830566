"""Group commit: concurrent callers share statements, each still gets its own answer or error."""

from __future__ import annotations

import asyncio

import pytest

from gateway.batch import Batch


class Recorder:
    def __init__(self, fail_on: int | None = None) -> None:
        self.calls: list[list[int]] = []
        self.fail_on = fail_on

    async def run(self, items: list[int]) -> list[int]:
        self.calls.append(items)
        await asyncio.sleep(0.01)  # a database round trip: others arrive meanwhile
        if self.fail_on in items:
            raise ValueError("statement failed")
        return [item * 10 for item in items]


async def test_callers_arriving_together_share_one_statement_and_get_their_own_results():
    recorder = Recorder()
    batch = Batch(recorder.run)
    results = await asyncio.gather(*(batch.submit(i) for i in range(50)))
    assert results == [i * 10 for i in range(50)]
    assert recorder.calls == [list(range(50))]


async def test_callers_arriving_during_a_statement_go_in_the_next_one():
    recorder = Recorder()
    batch = Batch(recorder.run)
    first = asyncio.create_task(batch.submit(1))
    await asyncio.sleep(0.005)  # the first statement is running
    later = await asyncio.gather(*(batch.submit(i) for i in (2, 3, 4)))
    assert (await first, later) == (10, [20, 30, 40])
    assert recorder.calls == [[1], [2, 3, 4]]


async def test_a_lone_caller_is_not_kept_waiting_for_company():
    recorder = Recorder()
    batch = Batch(recorder.run)
    assert await asyncio.wait_for(batch.submit(7), 0.5) == 70


async def test_a_failed_statement_fails_its_callers_only_and_the_next_batch_runs():
    recorder = Recorder(fail_on=2)
    batch = Batch(recorder.run, max_size=3)
    outcomes = await asyncio.gather(*(batch.submit(i) for i in range(6)), return_exceptions=True)
    assert [type(o).__name__ for o in outcomes[:3]] == ["ValueError"] * 3
    assert outcomes[3:] == [30, 40, 50]
    assert recorder.calls == [[0, 1, 2], [3, 4, 5]]


async def test_a_caller_that_gives_up_does_not_cancel_the_others():
    recorder = Recorder()
    batch = Batch(recorder.run)
    impatient = asyncio.create_task(batch.submit(1))
    patient = asyncio.create_task(batch.submit(2))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == 20
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert recorder.calls == [[1, 2]]
