"""The dispatcher under test; scripted senders stand in for the providers and an in-memory recorder for
the delivery log. Most cases run on both queues; the shared rate limit and the crash need Redis."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from channels.base import Outgoing, SendError, SendResult
from gateway.outbound.dispatcher import Dispatcher
from gateway.outbound.queue import RedisStreamQueue
from gateway.outbound.ratelimit import MemoryRateLimiter, RedisRateLimiter, create_limiter
from gateway.outbound.tests.test_queue_contract import PHONE, REDIS_URL, Backend, msg
from gateway.outbound.tests.workers import QUICK, running, until

ROOT = Path(__file__).resolve().parents[3]
OPENID = "oKx7Y5tW3qZ9mN2pL8vR4sT6uV1w"


class Recorder:
    """The delivery log, in memory: what the SQL implementation records, as plain lists."""

    def __init__(self, fallback: Callable[[Outgoing], Outgoing | None] | None = None) -> None:
        self.delivered: dict[str, list[tuple[SendResult, Outgoing]]] = defaultdict(list)
        self.failures: dict[str, tuple[str, str, str | None]] = {}
        self.retries: list[tuple[str, int, str, str | None, float]] = []
        self.cancelled: set[str] = set()
        self._fallback = fallback

    async def should_send(self, ref: str) -> bool:
        return ref not in self.delivered and ref not in self.failures and ref not in self.cancelled

    async def sent(self, ref: str, result: SendResult, message: Outgoing) -> None:
        self.delivered[ref].append((result, message))

    async def retrying(self, ref: str, attempt: int, reason: str, code: str | None, delay_s: float) -> None:
        self.retries.append((ref, attempt, reason, code, delay_s))

    async def failed(self, ref: str, kind: str, reason: str, code: str | None) -> None:
        self.failures[ref] = (kind, reason, code)

    async def fallback(self, message: Outgoing, kind: str, reason: str) -> Outgoing | None:
        return self._fallback(message) if self._fallback else None


class ScriptedSender:
    """A provider that answers from a script per ref (an exception to raise, or None for success) and
    can hold a send until the test releases it."""

    def __init__(self, channel: str = "sms", script: dict[str, list[BaseException | None]] | None = None) -> None:
        self.channel = channel
        self.script = script or {}
        self.hold: dict[str, asyncio.Event] = {}
        self.calls: list[str] = []
        self.times: list[float] = []
        self.delay = 0.0

    async def send(self, message: Outgoing) -> SendResult:
        self.calls.append(message.ref)
        self.times.append(time.monotonic())
        if message.ref in self.hold:
            await self.hold.pop(message.ref).wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        outcomes = self.script.get(message.ref)
        if outcomes:
            outcome = outcomes.pop(0)
            if outcome is not None:
                raise outcome
        return SendResult(provider_id=f"{self.channel.upper()}{len(self.calls)}")

    async def close(self) -> None:
        return None


# The `backend` and `queue` fixtures (memory and real Redis) are in conftest.py.


def dispatcher(queue, senders, recorder, **options) -> Dispatcher:
    settings = dict(QUICK, concurrency=4, visibility_ms=2000)
    settings.update(options)
    return Dispatcher(queue, senders, recorder, **settings)


async def drained(queue) -> bool:
    return all(not any(counts.values()) for counts in (await queue.depth()).values())


async def until_drained(queue, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await drained(queue):
        assert time.monotonic() < deadline, f"queue not drained: {await queue.depth()}"
        await asyncio.sleep(0.02)


# --- priorities -------------------------------------------------------------------------------------


async def test_emergency_goes_before_queued_bulk(queue):
    sms = ScriptedSender()
    sms.hold["b0"] = gate = asyncio.Event()
    await queue.add_many([msg(f"b{i}", "bulk") for i in range(5)])
    recorder = Recorder()
    async with running(dispatcher(queue, {"sms": sms}, recorder, concurrency=1)):
        await until(lambda: sms.calls == ["b0"])  # a bulk send is under way
        await queue.add(msg("r1"))
        await queue.add(msg("e1", "emergency"))
        gate.set()
        await until(lambda: len(recorder.delivered) == 7)
    assert sms.calls == ["b0", "e1", "r1", "b1", "b2", "b3", "b4"]
    assert await drained(queue)


# --- outcomes ---------------------------------------------------------------------------------------


async def test_a_copy_of_a_sent_message_is_dropped_not_failed_even_without_a_sender(queue):
    # the log is asked before any outcome is recorded: a failure written over "sent" would turn a
    # delivered broadcast recipient into an SMS fallback
    recorder = Recorder()
    recorder.delivered["m1"].append((SendResult(provider_id="SMS0"), msg("m1")))
    await queue.add(msg("m1"))
    d = dispatcher(queue, {}, recorder)
    async with running(d):
        await until_drained(queue)
    assert recorder.failures == {} and d.stats()["skipped"] == 1


async def test_retry_then_success_is_sent_once_with_attempts_recorded(queue):
    sms = ScriptedSender(script={"m1": [SendError("retry", "503 from provider"), SendError("retry", "reset"), None]})
    recorder = Recorder()
    await queue.add(msg("m1"))
    d = dispatcher(queue, {"sms": sms}, recorder)
    async with running(d):
        await until(lambda: "m1" in recorder.delivered)
        await asyncio.sleep(0.1)
    assert sms.calls == ["m1", "m1", "m1"]
    ((result, sent),) = recorder.delivered["m1"]
    assert sent.attempt == 2 and result.provider_id == "SMS3"
    assert [(ref, attempt) for ref, attempt, *_ in recorder.retries] == [("m1", 1), ("m1", 2)]
    assert sms.times[1] - sms.times[0] >= 0.025  # backed off (half the first step at least)
    stats = d.stats()
    assert (stats["sent"], stats["retried"], stats["failed"], stats["in_flight"]) == (1, 2, 0, 0)
    assert await drained(queue)


async def test_retry_after_from_the_provider_is_respected(queue):
    throttled = SendError("retry", "429 Too Many Requests", code="20429", retry_after_s=0.4)
    sms = ScriptedSender(script={"m1": [throttled, None]})
    recorder = Recorder()
    await queue.add(msg("m1"))
    async with running(dispatcher(queue, {"sms": sms}, recorder)):
        await until(lambda: "m1" in recorder.delivered)
    assert sms.times[1] - sms.times[0] >= 0.35
    assert recorder.retries[0][3] == "20429"


async def test_permanent_and_opted_out_fail_without_retry(queue):
    sms = ScriptedSender(
        script={
            "m1": [SendError("permanent", "invalid number", code="21211")],
            "m2": [SendError("opted_out", "recipient replied 退订", code="21610")],
        }
    )
    recorder = Recorder()
    await queue.add_many([msg("m1"), msg("m2")])
    async with running(dispatcher(queue, {"sms": sms}, recorder)):
        await until(lambda: len(recorder.failures) == 2)
        await asyncio.sleep(0.15)
    assert sorted(sms.calls) == ["m1", "m2"]
    assert recorder.failures == {
        "m1": ("permanent", "invalid number", "21211"),
        "m2": ("opted_out", "recipient replied 退订", "21610"),
    }
    assert not recorder.delivered and not recorder.retries
    assert await drained(queue)


async def test_gives_up_after_max_attempts(queue):
    sms = ScriptedSender(script={"m1": [SendError("retry", "service unavailable", "503")] * 10})
    recorder = Recorder()
    await queue.add(msg("m1"))
    async with running(dispatcher(queue, {"sms": sms}, recorder, max_attempts=3)):
        await until(lambda: "m1" in recorder.failures)
        await asyncio.sleep(0.1)
    assert sms.calls == ["m1"] * 3
    kind, reason, code = recorder.failures["m1"]
    assert kind == "permanent" and "3 attempts" in reason and "service unavailable" in reason and code == "503"
    assert [attempt for _, attempt, *_ in recorder.retries] == [1, 2]
    assert await drained(queue)


async def test_window_closed_falls_back_to_the_log_s_alternative(queue):
    def sms_instead(message: Outgoing) -> Outgoing | None:
        if message.ref != "m1":
            return None
        return Outgoing(channel="sms", to=PHONE, text="【克拉玛依市民服务】" + message.text, ref=message.ref)

    closed = "outside the 48-hour window"
    wechat = ScriptedSender(
        "wechat",
        script={
            "m1": [SendError("window_closed", closed, "45015")],
            "m2": [SendError("window_closed", closed, "45015")],
        },
    )
    sms = ScriptedSender("sms")
    recorder = Recorder(fallback=sms_instead)
    for ref in ("m1", "m2"):
        await queue.add(Outgoing(channel="wechat", to=OPENID, text="您的预约已确认", ref=ref))
    d = dispatcher(queue, {"wechat": wechat, "sms": sms}, recorder)
    async with running(d):
        await until(lambda: "m1" in recorder.delivered and "m2" in recorder.failures)
    assert sorted(wechat.calls) == ["m1", "m2"] and sms.calls == ["m1"]
    ((_, via),) = recorder.delivered["m1"]
    assert via.channel == "sms" and via.text == "【克拉玛依市民服务】您的预约已确认"
    assert recorder.failures["m2"] == ("window_closed", closed, "45015")
    assert d.stats()["fallbacks"] == 1
    assert await drained(queue)


async def test_unknown_channel_fails(queue):
    recorder = Recorder()
    await queue.add(Outgoing(channel="fax", to="0990-1234567", text="传真", ref="m1"))
    async with running(dispatcher(queue, {"sms": ScriptedSender()}, recorder)):
        await until(lambda: "m1" in recorder.failures)
    assert recorder.failures["m1"][0] == "permanent" and "fax" in recorder.failures["m1"][1]
    assert await drained(queue)


async def test_sender_crashes_are_retried_and_addresses_never_logged(queue, caplog):
    caplog.set_level(logging.DEBUG, logger="gateway.outbound")
    sms = ScriptedSender(
        script={
            "m1": [RuntimeError(f"connection reset while sending to {PHONE}"), None],
            "m2": [SendError("permanent", f"The 'To' number {PHONE} is not a valid phone number", "21211")],
        }
    )
    wechat = ScriptedSender("wechat", script={"m3": [SendError("permanent", f"invalid openid {OPENID}", "40003")]})
    recorder = Recorder()
    await queue.add_many([msg("m1"), msg("m2"), Outgoing(channel="wechat", to=OPENID, text="您好", ref="m3")])
    async with running(dispatcher(queue, {"sms": sms, "wechat": wechat}, recorder)):
        await until(lambda: "m1" in recorder.delivered and len(recorder.failures) == 2)
    assert sms.calls.count("m1") == 2
    assert "RuntimeError" in caplog.text and "m2" in caplog.text  # the log still says what happened
    assert PHONE not in caplog.text and PHONE[3:] not in caplog.text and OPENID not in caplog.text
    assert PHONE in recorder.failures["m2"][1]  # the delivery log (the database) keeps the full reason


async def test_sent_or_cancelled_messages_are_not_sent_again(queue):
    recorder = Recorder()
    recorder.cancelled.add("m1")
    recorder.delivered["m2"].append((SendResult("SM0"), msg("m2")))
    sms = ScriptedSender()
    await queue.add_many([msg("m1"), msg("m2"), msg("m3")])
    d = dispatcher(queue, {"sms": sms}, recorder)
    async with running(d):
        await until(lambda: "m3" in recorder.delivered)
        await asyncio.sleep(0.1)
    assert sms.calls == ["m3"]
    assert d.stats()["skipped"] == 2
    assert await drained(queue)


async def test_two_copies_of_one_message_are_never_sent_at_once(queue):
    sms = ScriptedSender()
    sms.delay = 0.2
    recorder = Recorder()
    await queue.add_many([msg("m1"), msg("m1"), msg("m1")])  # e.g. a producer that enqueued twice
    async with running(dispatcher(queue, {"sms": sms}, recorder, concurrency=4)):
        await until(lambda: "m1" in recorder.delivered)
        await until_drained(queue)  # the copies that found the claim taken come back later and are skipped
    assert sms.calls == ["m1"] and len(recorder.delivered["m1"]) == 1


async def test_a_send_that_hangs_times_out_and_is_retried(queue):
    sms = ScriptedSender()
    sms.hold["m1"] = asyncio.Event()  # never set: the first call hangs
    recorder = Recorder()
    await queue.add(msg("m1"))
    async with running(dispatcher(queue, {"sms": sms}, recorder, send_timeout_s=0.2)):
        await until(lambda: "m1" in recorder.delivered)
    assert sms.calls == ["m1", "m1"]
    assert "no answer within 0.2 s" in recorder.retries[0][2]


async def test_a_queue_outage_is_waited_out():
    unreachable = RedisStreamQueue("redis://127.0.0.1:1/0")
    d = dispatcher(unreachable, {"sms": ScriptedSender()}, Recorder())
    task = asyncio.create_task(d.run())
    await until(lambda: d.stats()["errors"] >= 1)
    assert not task.done()
    d.stop()
    await asyncio.wait_for(task, 3)
    await unreachable.close()


# --- rate limits ------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def limiter(request):
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    prefix = f"test:rate:{uuid.uuid4().hex}:"
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    yield RedisRateLimiter(client, prefix=prefix)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_limiter_spaces_reservations_by_cost(limiter):
    key = f"test:{uuid.uuid4().hex}"
    delays = [await limiter.reserve(key, 10) for _ in range(4)]
    assert delays == pytest.approx([0.0, 0.1, 0.2, 0.3], abs=0.03)
    segments = f"test:{uuid.uuid4().hex}"
    assert await limiter.reserve(segments, 10, cost=3) == 0.0
    assert await limiter.reserve(segments, 10, cost=1) == pytest.approx(0.3, abs=0.03)  # three segments paid
    bursty = f"test:{uuid.uuid4().hex}"
    assert [await limiter.reserve(bursty, 10, burst=2) for _ in range(4)] == pytest.approx([0, 0, 0, 0.1], abs=0.03)
    assert await limiter.reserve(key, None) == 0.0 and await limiter.reserve(key, 0) == 0.0  # unlimited
    started = time.monotonic()
    assert await limiter.acquire(key, 10) > 0.3
    assert time.monotonic() - started >= 0.3


async def test_create_limiter_picks_the_backend():
    assert isinstance(create_limiter(None), MemoryRateLimiter)
    shared = create_limiter(REDIS_URL)
    assert isinstance(shared, RedisRateLimiter)
    await shared.close()


async def test_segments_are_the_unit_when_configured():
    queue = Backend("memory").open()
    sms = ScriptedSender()
    recorder = Recorder()
    await queue.add_many([msg(f"m{i}", segments=5) for i in range(4)])
    d = dispatcher(queue, {"sms": sms}, recorder, limiter=MemoryRateLimiter(), limits={"sms": (50, "segments")})
    async with running(d):
        await until(lambda: len(recorder.delivered) == 4)
    assert sms.times[-1] - sms.times[0] >= 0.25  # 3 × 5 segments at 50 a second = 0.3 s


async def test_rate_limit_is_shared_by_two_dispatchers_on_one_redis():
    backend, rate, total = Backend("redis"), 25, 45
    try:
        first_queue, second_queue = backend.open(), backend.open()
        await first_queue.add_many([msg(f"recipient:{i}", "bulk") for i in range(total)])
        # two clients, as two worker processes would have; the prefix puts the keys under the clean-up
        limiters = [RedisRateLimiter(REDIS_URL, prefix=f"{{{backend.prefix}}}:rate:") for _ in range(2)]
        senders = [ScriptedSender(), ScriptedSender()]
        recorder = Recorder()
        workers = [
            dispatcher(q, {"sms": s}, recorder, limiter=lim, limits={"sms": (rate, "messages")}, concurrency=8)
            for q, s, lim in zip((first_queue, second_queue), senders, limiters, strict=True)
        ]
        async with running(*workers):
            await until(lambda: len(recorder.delivered) == total, timeout=10)
        times = sorted(senders[0].times + senders[1].times)
        assert len(times) == total and all(len(v) == 1 for v in recorder.delivered.values())
        assert senders[0].calls and senders[1].calls  # both workers took part
        span = times[-1] - times[0]
        assert span >= (total - 1) / rate * 0.85, f"{total} sends in {span:.2f} s: faster than {rate}/s"
        busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
        assert busiest <= rate + 3, f"{busiest} sends within one second"
        for lim in limiters:
            await lim.close()
    finally:
        await backend.close()


# --- crashes ----------------------------------------------------------------------------------------


async def test_a_killed_worker_s_message_is_reclaimed_and_sent_exactly_once():
    backend = Backend("redis")
    queue = backend.open()
    proc = None
    try:
        await queue.add(msg("m1"))  # sent and acked by the worker before it dies
        await queue.add(msg("hang-m2"))  # in flight when it dies
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.outbound.tests.worker_proc",
            "--redis",
            REDIS_URL,
            "--prefix",
            backend.prefix,
            "--visibility-ms",
            "3000",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        lines: list[str] = []
        while "SENDING hang-m2" not in lines:
            line = await asyncio.wait_for(proc.stdout.readline(), 15)
            assert line, f"the worker exited early: {lines}"
            lines.append(line.decode().strip())
        proc.kill()  # SIGKILL mid-send: no clean-up, no ack
        await proc.wait()
        assert "SENT m1" in lines
        assert (await queue.depth())["reply"] == {"ready": 0, "pending": 1, "delayed": 0}

        sms = ScriptedSender()
        recorder = Recorder()  # a fresh log: should m1 come back, it would be sent again and show
        d = dispatcher(queue, {"sms": sms}, recorder, visibility_ms=1000, consumer="rescuer")
        started = time.monotonic()
        async with running(d):
            await until(lambda: "hang-m2" in recorder.delivered, timeout=10)
            waited = time.monotonic() - started
            await asyncio.sleep(1.05)  # past another visibility period: nothing else turns up
        assert sms.calls == ["hang-m2"] and len(recorder.delivered["hang-m2"]) == 1
        assert waited >= 0.5  # not before the entry had been idle for a while
        assert d.stats()["reclaimed"] == 1
        assert await drained(queue)
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await backend.close()
