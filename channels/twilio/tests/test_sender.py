"""TwilioSender through the real `twilio` client against the local Twilio Messages API.

The outgoing cases are a table (what the provider does → what the dispatcher is told) of the shared
channel harness's OutgoingCase rows, run by channels.harness.run_outgoing; the tests after it cover
what one case cannot: concurrency, logging, the Sender contract."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from channels.base import Outgoing, SendError, SendResult
from channels.harness import ANY, OutgoingCase, run_outgoing
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


def outgoing(to: str = TO, text: str = SHORT, ref: str = "message:42") -> Outgoing:
    return Outgoing(channel="sms", to=to, text=text, ref=ref)


def queued(segments: int = 1, to: str = TO, text: str = SHORT) -> dict[str, Any]:
    """The one message Twilio must have accepted: exactly what we sent, its segments as Twilio counts them."""
    return {"to": to, "from": FROM, "body": text, "segments": segments, "status_callback": CALLBACK}


def fail(**fault: Any) -> Callable[[LocalTwilio], Any]:
    return lambda server: server.fail(**fault)


def latency(ms: float) -> Callable[[LocalTwilio], None]:
    return lambda server: server.configure(latency_ms=ms)


def opted_out(number: str) -> Callable[[LocalTwilio], None]:
    """The recipient had texted 退订 / STOP."""
    return lambda server: server.opt_out(number)


def make_sender(url: str, auth_token: str = TOKEN, timeout_s: float = 5.0) -> TwilioSender:
    """Options: the sender's token (the server accepts TOKEN) and its timeout."""
    return TwilioSender(SID, auth_token, FROM, api_base=url, status_callback=CALLBACK, timeout_s=timeout_s)


SMS = outgoing()
SUCCESS: dict[str, Any] = {"status": "queued", "provider_id_field": "sid"}  # the SendResult carries Twilio's SID

CASES = [
    OutgoingCase("success", SMS, sent=[queued()], **SUCCESS),
    OutgoingCase("success, three UCS-2 segments", outgoing(text=LONG), sent=[queued(3, text=LONG)], **SUCCESS),
    OutgoingCase("429 is retried", SMS, fail(status=429), "retry", "20429"),
    OutgoingCase("429 with Retry-After", SMS, fail(status=429, retry_after_s=7), "retry", "20429", retry_after_s=7.0),
    OutgoingCase("500 is retried", SMS, fail(status=500), "retry", "20500"),
    OutgoingCase("503 is retried", SMS, fail(status=503), "retry", "20503"),
    OutgoingCase("21211 invalid number is permanent", SMS, fail(code=21211), "permanent", "21211"),
    OutgoingCase("a number the server rejects is permanent", outgoing(to="+86139"), None, "permanent", "21211"),
    OutgoingCase("21614 not a mobile is permanent", SMS, fail(status=400, code=21614), "permanent", "21614"),
    OutgoingCase("21610 unsubscribed is opted_out", SMS, fail(code=21610), "opted_out", "21610"),
    OutgoingCase("an opted-out recipient is opted_out", SMS, opted_out(TO), "opted_out", "21610"),
    OutgoingCase("server down is retried", SMS, None, "retry", None, down=True),
    # A slow create still lands after the client gave up, as at Twilio: whether it has yet is not checked.
    OutgoingCase("latency beyond the timeout is retried", SMS, latency(1000), "retry", None, sent=ANY,
                 options={"timeout_s": 0.3}),
    OutgoingCase("latency within the timeout succeeds", SMS, latency(100), sent=[queued()], options={"timeout_s": 2},
                 **SUCCESS),
    OutgoingCase("a bad auth token is permanent", SMS, None, "permanent", "20003",
                 options={"auth_token": "wrong-token"}),
]  # fmt: skip


def recorded(server: LocalTwilio) -> list[dict[str, Any]]:
    return [message.as_dict() for message in server.messages]


@pytest.fixture
async def twilio() -> AsyncIterator[LocalTwilio]:
    async with LocalTwilio(SID, TOKEN) as server:
        yield server


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_outgoing(case: OutgoingCase, twilio: LocalTwilio, caplog: pytest.LogCaptureFixture):
    await run_outgoing(case, make_sender, twilio, recorded, caplog, [TOKEN])


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
