"""One contract, two implementations: the in-memory default and real Redis behave alike."""

import asyncio
import uuid

import pytest

from gateway.state import MemoryState
from gateway.state.redis import RedisState

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["memory", "redis"])
async def state(request):
    store = MemoryState() if request.param == "memory" else RedisState(REDIS_URL)
    yield store
    await store.close()


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_claim_is_granted_once(state):
    k = key()
    results = await asyncio.gather(*(state.claim(k, 60) for _ in range(10)))
    assert results.count(True) == 1


async def test_claim_expires(state):
    k = key()
    assert await state.claim(k, 1)
    await asyncio.sleep(1.1)
    assert await state.claim(k, 1)


async def test_release_allows_a_new_claim(state):
    k = key()
    assert await state.claim(k, 60)
    await state.release(k)
    assert await state.claim(k, 60)


async def test_json_round_trip_keeps_chinese(state):
    k = key()
    value = {"session": "s1", "text": "12路公交车到哪了", "n": [1, 2]}
    await state.set_json(k, value, 60)
    assert await state.get_json(k) == value
    assert await state.get_json(key()) is None


async def test_rate_window_counts(state):
    k = key()
    counts = [await state.hit(k, 60) for _ in range(5)]
    assert counts == [1, 2, 3, 4, 5]


async def test_sliding_window_counts_concurrent_events_one_by_one(state):
    k = key()
    hits = await asyncio.gather(*(state.hit_sliding(k, 60) for _ in range(50)))
    assert sorted(h.count for h in hits) == list(range(1, 51))
    assert len({h.id for h in hits}) == 50
    assert all(0 < h.oldest_expires_in_s <= 60 for h in hits)
    assert (await state.hit_sliding(key(), 60)).count == 1  # keys are counted apart


async def test_a_forgotten_event_no_longer_counts(state):
    k = key()
    first = await state.hit_sliding(k, 60)
    await state.hit_sliding(k, 60)
    await state.forget(k, first.id)
    await state.forget(k, "no-such-event")
    assert (await state.hit_sliding(k, 60)).count == 2


async def test_events_leave_the_sliding_window_as_it_moves(state):
    k = key()
    await state.hit_sliding(k, 1)
    await asyncio.sleep(0.6)
    assert (await state.hit_sliding(k, 1)).count == 2
    await asyncio.sleep(0.6)  # the first event is now older than the window, the second is not
    later = await state.hit_sliding(k, 1)
    assert later.count == 2 and later.oldest_expires_in_s < 1


async def test_publish_reaches_every_subscriber_of_the_topic_only(state):
    topic, other = key(), key()
    async with state.subscribe(topic) as first, state.subscribe(topic) as second, state.subscribe(other) as third:
        await state.publish(topic, {"text": "您好"})
        assert await first.get(timeout=2) == {"text": "您好"}
        assert await second.get(timeout=2) == {"text": "您好"}
        with pytest.raises(asyncio.TimeoutError):
            await third.get(timeout=0.3)


async def test_ping(state):
    assert await state.ping() is True


async def test_redis_ping_is_false_when_unreachable():
    store = RedisState("redis://127.0.0.1:1/0")
    assert await store.ping() is False
    await store.close()


async def test_a_burst_of_concurrent_commands_waits_instead_of_failing(state):
    # 500 webhooks at once: more than the Redis pool's connections, none may fail.
    k = key()
    counts = await asyncio.gather(*(state.hit(k, 60) for _ in range(500)))
    assert sorted(counts) == list(range(1, 501))
