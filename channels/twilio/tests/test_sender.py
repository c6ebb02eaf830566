"""TwilioSender through the real `twilio` client against the local Twilio Messages API.

The outgoing cases are a table (what the provider does → what the dispatcher is told), run by one
parametrized test, so that a shared channel harness can later take the table over as it stands."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from channels.base import Outgoing, SendError, SendResult
from channels.twilio.sender import TwilioSender
from providers.twilio_api import LocalTwilio

# twilio 9.13's async client builds aiohttp.BasicAuth, which aiohttp 3.14 deprecates: not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]

SID = "AC" + "c3" * 16
TOKEN = "sender-test-token"
FROM = "+15005550006"
TO = "+8613912345678"
CALLBACK = "http://127.0.0.1:9/twilio/status"  # recorded by the server; no case waits for a callback
SHORT = "【克拉玛依市民服务】12路约3分钟到站"
LONG = (
    "【克拉玛依市民服务】" + "明天上午九点至下午五点，白碱滩区部分小区计划停水，请提前储水。" * 5
)  # UCS-2, 3 segments


@dataclass(frozen=True)
class Expect:
    """A SendResult (status set) or a SendError (kind set, with its code and Retry-After)."""

    status: str | None = None
    kind: str | None = None
    code: str | None = None
    retry_after_s: float | None = None
    segments: int | None = None  # what the provider counted, for a success


@dataclass(frozen=True)
class Case:
    name: str
    expect: Expect
    fault: dict[str, Any] | None = None  # LocalTwilio.fail(**fault)
    opted_out: bool = False  # the recipient had texted 退订 / STOP
    latency_ms: float = 0.0
    server_down: bool = False  # nothing listens at api_base
    auth_token: str = TOKEN  # the sender's token; the server accepts TOKEN
    timeout_s: float = 5.0
    to: str = TO
    text: str = SHORT


CASES = [
    Case("success", Expect(status="queued", segments=1)),
    Case("success, three UCS-2 segments", Expect(status="queued", segments=3), text=LONG),
    Case("429 is retried", Expect(kind="retry", code="20429"), fault={"status": 429}),
    Case(
        "429 with Retry-After",
        Expect(kind="retry", code="20429", retry_after_s=7.0),
        fault={"status": 429, "retry_after_s": 7},
    ),
    Case("500 is retried", Expect(kind="retry", code="20500"), fault={"status": 500}),
    Case("503 is retried", Expect(kind="retry", code="20503"), fault={"status": 503}),
    Case("21211 invalid number is permanent", Expect(kind="permanent", code="21211"), fault={"code": 21211}),
    Case("a number the server rejects is permanent", Expect(kind="permanent", code="21211"), to="+86139"),
    Case(
        "21614 not a mobile is permanent", Expect(kind="permanent", code="21614"), fault={"status": 400, "code": 21614}
    ),
    Case("21610 unsubscribed is opted_out", Expect(kind="opted_out", code="21610"), fault={"code": 21610}),
    Case("an opted-out recipient is opted_out", Expect(kind="opted_out", code="21610"), opted_out=True),
    Case("server down is retried", Expect(kind="retry"), server_down=True),
    Case("latency beyond the timeout is retried", Expect(kind="retry"), latency_ms=1000, timeout_s=0.3),
    Case("latency within the timeout succeeds", Expect(status="queued", segments=1), latency_ms=100, timeout_s=2),
    Case("a bad auth token is permanent", Expect(kind="permanent", code="20003"), auth_token="wrong-token"),
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outgoing(to: str = TO, text: str = SHORT, ref: str = "message:42") -> Outgoing:
    return Outgoing(channel="sms", to=to, text=text, ref=ref)


@pytest.fixture
async def twilio() -> AsyncIterator[LocalTwilio]:
    async with LocalTwilio(SID, TOKEN) as server:
        yield server


async def run_case(case: Case, server: LocalTwilio) -> SendResult | SendError:
    """Set the provider up as the case says, send one message, return what the sender said."""
    if case.fault is not None:
        server.fail(**case.fault)
    if case.opted_out:
        server.opt_out(case.to)
    server.configure(latency_ms=case.latency_ms)
    api_base = f"http://127.0.0.1:{closed_port()}" if case.server_down else server.url
    sender = TwilioSender(
        SID, case.auth_token, FROM, api_base=api_base, status_callback=CALLBACK, timeout_s=case.timeout_s
    )
    try:
        return await sender.send(outgoing(case.to, case.text))
    except SendError as error:
        return error
    finally:
        await sender.close()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_outgoing(case: Case, twilio: LocalTwilio):
    outcome = await run_case(case, twilio)
    if case.expect.status is not None:
        assert isinstance(outcome, SendResult), outcome
        assert outcome.status == case.expect.status
        [recorded] = twilio.messages
        assert outcome.provider_id == recorded.sid
        assert (recorded.to, recorded.from_, recorded.body) == (case.to, FROM, case.text)  # exactly what we sent
        assert recorded.segments == case.expect.segments
        assert recorded.status_callback == CALLBACK
    else:
        assert isinstance(outcome, SendError), outcome
        assert (outcome.kind, outcome.code, outcome.retry_after_s) == (
            case.expect.kind,
            case.expect.code,
            case.expect.retry_after_s,
        )
        assert case.to not in str(outcome)  # the dispatcher logs and stores this text
        if not case.latency_ms:  # a slow create still lands after the client gave up, as at Twilio
            assert twilio.messages == []


async def test_concurrent_sends_keep_their_own_retry_after(twilio):
    other = "+8613800000009"
    twilio.fail(to=TO, status=429, retry_after_s=3)
    twilio.fail(to=other, status=503, retry_after_s=11)
    sender = TwilioSender(SID, TOKEN, FROM, api_base=twilio.url)
    try:
        outcomes = await asyncio.gather(
            sender.send(outgoing(TO)),
            sender.send(outgoing(other)),
            sender.send(outgoing("+8613800000008")),
            return_exceptions=True,
        )
    finally:
        await sender.close()
    assert [getattr(o, "retry_after_s", None) for o in outcomes] == [3.0, 11.0, None]
    assert isinstance(outcomes[2], SendResult)


async def test_one_sender_sends_many_at_once(twilio):
    sender = TwilioSender(SID, TOKEN, FROM, api_base=twilio.url)
    try:
        results = await asyncio.gather(*(sender.send(outgoing(f"+86139000000{i:02d}", f"第{i}条")) for i in range(50)))
    finally:
        await sender.close()
    assert len({r.provider_id for r in results}) == 50
    assert sorted(m.body for m in twilio.messages) == sorted(f"第{i}条" for i in range(50))


async def test_no_phone_number_or_body_reaches_any_log(twilio, caplog):
    caplog.set_level(logging.DEBUG)  # the root logger at its most talkative
    twilio.fail(to=TO, code=21211)  # Twilio's 21211 text quotes the number
    sender = TwilioSender(SID, TOKEN, FROM, api_base=twilio.url, status_callback=CALLBACK)
    try:
        with pytest.raises(SendError):
            await sender.send(outgoing(TO))
        await sender.send(outgoing(TO))
        with pytest.raises(SendError):
            await sender.send(outgoing("+86139"))  # malformed: the server quotes it back
    finally:
        await sender.close()
    assert twilio.messages, "the success went through"
    assert any(r.name == "channels.twilio.sender" for r in caplog.records), "the capture sees our logs"
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + str(record.exc_info or "")
        assert TO not in text and TO[1:] not in text and "+86139" not in text, (record.name, text)
        assert SHORT not in text, (record.name, text)


async def test_twilio_request_logging_stays_below_info():
    # Importing the sender raised these: twilio logs each request's URL, query and headers at INFO.
    for name in ("twilio.http_client", "twilio.async_http_client"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING


async def test_a_sender_for_sms_refuses_other_channels(twilio):
    sender = TwilioSender(SID, TOKEN, FROM, api_base=twilio.url)
    with pytest.raises(SendError) as refused:
        await sender.send(Outgoing(channel="wechat", to="o6_bmjrPTlm6_2sgVt7hMZOPfL2M", text="您好", ref="message:1"))
    assert refused.value.kind == "permanent" and twilio.messages == []
    await sender.close()


async def test_close_closes_the_session_and_may_be_repeated(twilio):
    sender = TwilioSender(SID, TOKEN, FROM, api_base=twilio.url)
    await sender.close()  # before any send: nothing to close
    await sender.send(outgoing())
    session = sender._http.session
    await sender.close()
    await sender.close()
    assert session.closed
    await sender.send(outgoing())  # a later send opens a new session
    await sender.close()
    assert len(twilio.messages) == 2
