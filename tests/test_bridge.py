"""A broken Rasa never crashes the gateway and never loses a message.

In-process: the real app from create_app on a fresh migrated SQLite file, with a FakeRasa
(tests/fake_rasa.py) that answers, errors, hangs, fails a few times, or is stopped. Settings use
small timeouts (0.5 s Rasa timeout, breaker opens after 3 failures and retries after 1 s).
Plus unit tests of CircuitBreaker with an injected clock.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import pytest_asyncio

from gateway.inbound.bridge import CircuitBreaker
from gateway.inbound.turn import BUSY
from tests.fake_rasa import (
    BUTTON,
    Gateway,
    echo_text,
    new_id,
    running_gateway,
)

TIMEOUT_S = 0.5
RESET_S = 1.0
BUSY_REPLY = [{"text": BUSY, "buttons": []}]


@pytest_asyncio.fixture
async def gw(template, tmp_path, rasa):
    async with running_gateway(
        template, tmp_path, rasa, rasa_timeout_s=TIMEOUT_S, rasa_retries=2, breaker_failures=3, breaker_reset_s=RESET_S
    ) as gateway:
        yield gateway


def echoed(text: str) -> list[dict[str, Any]]:
    return [{"text": echo_text(text), "buttons": [BUTTON]}]


async def timed_say(gw: Gateway, session: str, text: str, message_id: str) -> tuple[int, Any, float]:
    started = time.monotonic()
    status, body = await gw.say(session, text, message_id)
    return status, body, time.monotonic() - started


def assert_busy(status: int, body: Any) -> None:
    """What the citizen sees when Rasa could not answer: a normal 200 with the busy sentence."""
    assert status == 200, body
    assert body["replies"] == BUSY_REPLY and body["duplicate"] is False
    assert "系统繁忙，请稍后再试" in body["replies"][0]["text"]


def assert_recorded_as_failed(gw: Gateway, session: str, message_id: str, text: str, error: str) -> None:
    """The message is in the log (not lost), marked bot_failed with why, with the busy reply sent."""
    inbound = gw.inbound(session, message_id)
    assert inbound is not None, "the citizen's message was lost"
    assert (inbound["text"], inbound["status"]) == (text, "bot_failed")
    assert inbound["error"].startswith(error), inbound["error"]
    assert [(r["direction"], r["text"], r["status"]) for r in gw.replies_to(inbound["id"])] == [("out", BUSY, "sent")]


def assert_answered(gw: Gateway, session: str, message_id: str, text: str) -> None:
    inbound = gw.inbound(session, message_id)
    assert inbound is not None
    assert (inbound["text"], inbound["status"], inbound["error"]) == (text, "answered", None)
    assert [r["text"] for r in gw.replies_to(inbound["id"])] == [echo_text(text)]


async def breaker_state(gw: Gateway) -> str:
    _, health = await gw.health()
    return health["checks"]["rasa_breaker"]


# --- one broken turn -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "attempts"),
    [(500, 1), (400, 1), (404, 1), (502, 3), (503, 3)],
    ids=["500-not-retried", "400-not-retried", "404-not-retried", "502-retried", "503-retried"],
)
async def test_rasa_http_error_gets_busy_reply_and_is_recorded(gw: Gateway, status: int, attempts: int) -> None:
    gw.rasa.fail_with(status)
    session, message_id = await gw.new_session(), new_id()
    got, body, _ = await timed_say(gw, session, "我要交电费", message_id)
    assert_busy(got, body)
    assert_recorded_as_failed(gw, session, message_id, "我要交电费", f"HTTP {status}")
    # 502/503 mean the turn never ran (proxy, Rasa loading): retried; anything else is not.
    assert gw.rasa.texts() == ["我要交电费"] * attempts


async def test_rasa_hanging_gets_busy_reply_in_time_and_is_not_retried(gw: Gateway) -> None:
    gw.rasa.hang()
    session, message_id = await gw.new_session(), new_id()
    status, body, elapsed = await timed_say(gw, session, "12路公交车到哪了", message_id)
    assert_busy(status, body)
    assert elapsed < TIMEOUT_S + 1, elapsed
    assert_recorded_as_failed(gw, session, message_id, "12路公交车到哪了", "timeout")
    # Rasa may still be running that turn: sending it again would answer it twice.
    await asyncio.sleep(0.7)  # longer than the first retry back-off
    assert len(gw.rasa.requests) == 1


async def test_rasa_503_twice_then_ok_gets_the_real_reply(gw: Gateway) -> None:
    gw.rasa.fail_next(503, 503)
    session, message_id = await gw.new_session(), new_id()
    status, body = await gw.say(session, "社区医院几点开门", message_id)
    assert (status, body["replies"], body["duplicate"]) == (200, echoed("社区医院几点开门"), False)
    assert gw.rasa.texts() == ["社区医院几点开门"] * 3
    assert len({str(r) for r in gw.rasa.requests}) == 1  # the same turn each time
    assert_answered(gw, session, message_id, "社区医院几点开门")
    assert await breaker_state(gw) == "closed"


async def test_rasa_503_on_every_retry_gives_up_after_bounded_attempts(gw: Gateway) -> None:
    gw.rasa.fail_next(503, 503, 503, 503)
    session, message_id = await gw.new_session(), new_id()
    status, body, elapsed = await timed_say(gw, session, "查询水费", message_id)
    assert_busy(status, body)
    assert len(gw.rasa.requests) == 3  # 1 + rasa_retries
    assert elapsed < 3, elapsed
    assert_recorded_as_failed(gw, session, message_id, "查询水费", "HTTP 503")


async def test_rasa_refusing_connections_gets_busy_reply(gw: Gateway) -> None:
    await gw.rasa.stop()
    session, message_id = await gw.new_session(), new_id()
    status, body, elapsed = await timed_say(gw, session, "电影票", message_id)
    assert_busy(status, body)
    assert elapsed < 3, elapsed
    assert_recorded_as_failed(gw, session, message_id, "电影票", "connect")
    # Rasa comes back: the next message is answered normally.
    await gw.rasa.start()
    status, body = await gw.say(session, "电影票", new_id())
    assert (status, body["replies"]) == (200, echoed("电影票"))


async def test_websocket_citizen_gets_busy_reply_when_rasa_fails(gw: Gateway) -> None:
    gw.rasa.fail_with(500)
    async with gw.client.ws_connect("/ws/webchat") as ws:
        hello = await ws.receive_json(timeout=3)
        await ws.send_json({"type": "message", "id": "m1", "text": "银行排队"})
        frames = [await ws.receive_json(timeout=3) for _ in range(3)]
    assert frames == [
        {"type": "typing"},
        {"type": "reply", "in_reply_to": "m1", **BUSY_REPLY[0]},
        {"type": "done", "in_reply_to": "m1"},
    ]
    assert_recorded_as_failed(gw, hello["session"], "m1", "银行排队", "HTTP 500")


async def test_resending_a_failed_message_tries_the_bot_again(gw: Gateway) -> None:
    gw.rasa.fail_with(500)
    session, message_id = await gw.new_session(), new_id()
    await gw.say(session, "预约挂号", message_id)
    gw.rasa.answer_normally()
    status, body = await gw.say(session, "预约挂号", message_id)
    assert status == 200 and body["replies"] != BUSY_REPLY and body["duplicate"] is False
    assert len(gw.rasa.requests) == 2
    [inbound] = gw.inbound_of_session(session)  # still one message, now answered
    assert inbound["status"] == "answered"
    status, body = await gw.say(session, "预约挂号", message_id)  # answered now: a plain replay
    assert body["duplicate"] is True and len(gw.rasa.requests) == 2


@pytest.mark.parametrize(
    ("payload", "acceptable"),
    [
        pytest.param({"text": "不是列表"}, [BUSY], id="object"),
        pytest.param(None, [BUSY], id="null"),
        pytest.param(["不是对象"], [BUSY], id="list-of-strings"),
        # A usable text with junk buttons may be delivered without them, or refused as a whole.
        pytest.param([{"text": "按钮坏了", "buttons": "not a list"}], [BUSY, "按钮坏了"], id="buttons-not-a-list"),
    ],
)
async def test_rasa_malformed_200_answer_never_crashes_the_turn(
    gw: Gateway, payload: Any, acceptable: list[str]
) -> None:
    gw.rasa.answer_raw(payload)
    session, message_id = await gw.new_session(), new_id()
    status, body = await gw.say(session, "你好", message_id)
    assert status == 200, body
    assert len(body["replies"]) == 1 and body["replies"][0]["text"] in acceptable
    assert all(isinstance(b, dict) for b in body["replies"][0]["buttons"])
    inbound = gw.inbound(session, message_id)
    assert inbound is not None and inbound["status"] == ("bot_failed" if body["replies"] == BUSY_REPLY else "answered")
    assert [r["text"] for r in gw.replies_to(inbound["id"])] == [body["replies"][0]["text"]]


# --- the circuit breaker, through the app ------------------------------------------------------


async def fail_three_turns(gw: Gateway, session: str) -> None:
    gw.rasa.fail_with(500)
    for i in range(3):
        status, body = await gw.say(session, f"失败{i}", f"f{i}")
        assert_busy(status, body)
    assert len(gw.rasa.requests) == 3


async def test_breaker_opens_after_three_failures_then_half_opens_and_closes(gw: Gateway) -> None:
    session = await gw.new_session()
    await fail_three_turns(gw, session)
    assert await breaker_state(gw) == "open"

    # Open: the turn does not reach Rasa at all, and the citizen hears back fast — even once Rasa is fine.
    gw.rasa.answer_normally()
    for message_id in ("open1", "open2"):
        status, body, elapsed = await timed_say(gw, session, "熔断中", message_id)
        assert_busy(status, body)
        assert elapsed < TIMEOUT_S, elapsed
        assert_recorded_as_failed(gw, session, message_id, "熔断中", "circuit open")
    assert len(gw.rasa.requests) == 3

    # After breaker_reset_s the gateway probes Rasa itself (an NLU parse, no conversation touched): no
    # citizen's message is the trial, and the breaker closes with no traffic at all.
    await asyncio.sleep(RESET_S + 0.05)
    assert await breaker_state(gw) == "closed"
    assert len(gw.rasa.parses) == 1 and len(gw.rasa.requests) == 3
    status, body = await gw.say(session, "恢复了吗", "trial")
    assert (status, body["replies"]) == (200, echoed("恢复了吗"))
    assert_answered(gw, session, "trial", "恢复了吗")
    status, body = await gw.say(session, "再来一条", "after")
    assert (status, body["replies"]) == (200, echoed("再来一条"))
    assert gw.rasa.texts()[3:] == ["恢复了吗", "再来一条"]


async def test_half_open_breaker_is_probed_by_the_next_turn_which_then_gets_its_answer(gw: Gateway) -> None:
    session = await gw.new_session()
    await fail_three_turns(gw, session)
    gw.rasa.answer_normally()
    await asyncio.sleep(RESET_S + 0.05)
    status, body = await gw.say(session, "好了吗", "after-reset")  # no /healthz in between
    assert (status, body["replies"]) == (200, echoed("好了吗"))
    assert len(gw.rasa.parses) == 1


async def test_breaker_failed_probe_opens_it_again(gw: Gateway) -> None:
    session = await gw.new_session()
    await fail_three_turns(gw, session)
    await asyncio.sleep(RESET_S + 0.05)
    status, body = await gw.say(session, "试一次", "trial")  # Rasa still failing: the probe fails first
    assert_busy(status, body)
    assert len(gw.rasa.requests) == 3 and len(gw.rasa.parses) == 1
    assert await breaker_state(gw) == "open"
    status, body, elapsed = await timed_say(gw, session, "又熔断", "again")
    assert_busy(status, body)
    assert elapsed < TIMEOUT_S
    assert len(gw.rasa.requests) == 3
    assert_recorded_as_failed(gw, session, "again", "又熔断", "circuit open")


async def test_breaker_opens_on_timeouts_and_refusals_too(gw: Gateway) -> None:
    session = await gw.new_session()
    gw.rasa.hang()
    await gw.say(session, "慢", "t1")
    await gw.rasa.stop()
    await gw.say(session, "断", "c1")
    await gw.say(session, "断", "c2")
    assert await breaker_state(gw) == "open"
    await gw.rasa.start()
    gw.rasa.answer_normally()
    before = len(gw.rasa.requests)
    status, body = await gw.say(session, "开着", "o1")
    assert_busy(status, body)
    assert len(gw.rasa.requests) == before


async def test_breaker_counts_only_consecutive_failures(gw: Gateway) -> None:
    session = await gw.new_session()
    for i, outcome in enumerate(["fail", "fail", "ok", "fail", "fail", "ok"]):
        if outcome == "fail":
            gw.rasa.fail_with(500)
        else:
            gw.rasa.answer_normally()
        await gw.say(session, f"第{i}条", f"m{i}")
    assert len(gw.rasa.requests) == 6
    assert await breaker_state(gw) == "closed"


async def test_breaker_recovers_after_a_malformed_answer_during_the_trial(gw: Gateway) -> None:
    session = await gw.new_session()
    await fail_three_turns(gw, session)
    await asyncio.sleep(RESET_S + 0.05)
    gw.rasa.answer_raw(None)
    await gw.say(session, "坏答复", "trial")
    await asyncio.sleep(RESET_S + 0.05)
    gw.rasa.answer_normally()
    status, body = await gw.say(session, "好了吗", "later")
    assert (status, body["replies"]) == (200, echoed("好了吗"))


# --- health ------------------------------------------------------------------------------------


async def test_healthz_follows_rasa(gw: Gateway) -> None:
    status, health = await gw.health()
    assert (status, health["status"], health["checks"]["rasa"]) == (200, "ok", "ok")
    assert health["checks"]["database"] == "ok"

    # Without Rasa the gateway still takes and records every message and answers "系统繁忙": degraded,
    # not down (a load balancer must not take every gateway out of rotation for it).
    await gw.rasa.stop()
    status, health = await gw.health()
    assert (status, health["status"], health["checks"]["rasa"]) == (200, "degraded", "down")
    assert health["checks"]["database"] == "ok"

    await gw.rasa.start()
    status, health = await gw.health()
    assert (status, health["status"], health["checks"]["rasa"]) == (200, "ok", "ok")


async def test_healthz_answers_while_rasa_hangs_on_turns(gw: Gateway) -> None:
    gw.rasa.hang()  # turns hang, /status still answers
    turn = asyncio.ensure_future(gw.say(await gw.new_session(), "慢", "slow"))
    status, health = await gw.health()
    assert status == 200 and health["checks"]["rasa"] == "ok"
    assert_busy(*await turn)


async def test_one_citizens_burst_does_not_make_the_assistant_busy_for_everybody(gw: Gateway) -> None:
    # Rasa runs one conversation's turns one at a time (its lock store): a burst from one session used
    # to pile up there, pass the timeout three times and open the breaker for every citizen.
    gw.rasa.delay_s = TIMEOUT_S * 0.4
    flooder = await gw.new_session()
    burst = await asyncio.gather(*(gw.say(flooder, f"第{i}条", f"b{i}") for i in range(30)))
    answered = [body for status, body in burst if status == 200]
    told_to_wait = [body for status, body in burst if status == 429]
    assert len(answered) + len(told_to_wait) == 30
    assert 1 <= len(answered) <= 3 and all(b["replies"] for b in answered)
    assert all(b["code"] == "busy" and "还在处理中" in b["error"] for b in told_to_wait)
    assert await breaker_state(gw) == "closed"
    status, body = await gw.say(await gw.new_session(), "我是路人", "bystander")
    assert (status, body["replies"]) == (200, echoed("我是路人"))


# --- CircuitBreaker unit tests (injected clock) ---------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_breaker(clock: Clock, failures: int = 3, reset_s: float = 10.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failures, reset_s, clock=clock)
    for _ in range(failures):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "open"
    return breaker


@pytest.mark.parametrize("failures", [1, 3, 5])
def test_breaker_unit_closed_until_threshold(clock: Clock, failures: int) -> None:
    breaker = CircuitBreaker(failures, 10.0, clock=clock)
    for _ in range(failures - 1):
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state == "closed"
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()


def test_breaker_unit_success_resets_the_count(clock: Clock) -> None:
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    for outcome in ["fail", "fail", "ok", "fail", "fail", "ok", "fail", "fail"]:
        assert breaker.allow()
        if outcome == "fail":
            breaker.record_failure()
        else:
            breaker.record_success()
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    ("elapsed", "state"), [(0.0, "open"), (9.99, "open"), (10.0, "half-open"), (60.0, "half-open")]
)
def test_breaker_unit_open_until_reset(clock: Clock, elapsed: float, state: str) -> None:
    breaker = open_breaker(clock)
    clock.advance(elapsed)
    assert breaker.state == state
    assert breaker.allow() is (state == "half-open")


def test_breaker_unit_half_open_allows_exactly_one_trial(clock: Clock) -> None:
    breaker = open_breaker(clock)
    clock.advance(10.0)
    assert [breaker.allow() for _ in range(5)] == [True, False, False, False, False]
    clock.advance(100.0)  # however long the trial takes, no second one runs alongside it
    assert not breaker.allow()


def test_breaker_unit_trial_success_closes(clock: Clock) -> None:
    breaker = open_breaker(clock)
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(5))
    # and it takes a full run of failures to open it again
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_breaker_unit_trial_failure_reopens_with_a_fresh_timer(clock: Clock) -> None:
    breaker = open_breaker(clock)
    clock.advance(15.0)
    assert breaker.allow()
    clock.advance(2.0)  # the trial took 2 s and failed
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    clock.advance(9.99)
    assert breaker.state == "open" and not breaker.allow()
    clock.advance(0.01)
    assert breaker.state == "half-open"
    assert breaker.allow() and not breaker.allow()
