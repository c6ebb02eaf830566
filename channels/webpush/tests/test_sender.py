"""WebPushSender (pywebpush: VAPID signing, aes128gcm encryption) against the local push service, which
verifies the VAPID token and decrypts every message as the browser would.

The outgoing cases are a table (how the push service behaves → what it received, decrypted, and what
the dispatcher is told) of the shared harness's OutgoingCase rows; the tests after it cover what one
case cannot: concurrency, logging, the Sender contract."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from channels.base import Outgoing, SendError, SendResult
from channels.harness import ANY, OutgoingCase, run_outgoing
from channels.webpush.sender import MAX_PAYLOAD_BYTES, WebPushSender
from channels.webpush.subscription import parse_subscription
from channels.webpush.vapid import generate_private_key_pem, load_private_key, public_key_b64
from providers.webpush_api import LocalWebPush

from .store import MemorySubscriptions

VAPID_KEY = generate_private_key_pem()  # the gateway's key: subscriptions are made with its public half
OTHER_KEY = generate_private_key_pem()  # a valid key, but not the one the browser subscribed with
SUBJECT = "mailto:citizen-services@karamay.example"
TO = "sub-73911"  # what Outgoing.to names: the gateway's subscription id
ALERT = {"title": "沙尘暴预警", "body": "今晚有沙尘暴，请关好门窗，减少外出。", "url": "/", "tag": "citygw-1"}
NOTICE = {"title": "停水通知", "body": "明天上午九点至下午五点，白碱滩区部分小区停水。", "url": "/", "tag": "citygw-2"}


def push(payload: dict[str, Any] | str = ALERT, priority: str = "emergency", to: str = TO) -> Outgoing:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return Outgoing(channel="webpush", to=to, text=text, ref="recipient:7", priority=priority)


@dataclass
class Rig:
    """The push service and the gateway's store of subscriptions, as one "provider" for the harness."""

    service: LocalWebPush
    store: MemorySubscriptions
    endpoint: str = ""  # the subscription the last sender was made with

    @property
    def url(self) -> str:
        return self.service.url


def received(payload: dict[str, Any], urgency: str = "high", ttl: int = 86400) -> dict[str, Any]:
    """What the browser must get: exactly this JSON, decrypted, under a verified VAPID token."""
    return {"json": payload, "urgency": urgency, "ttl": ttl, "subject": SUBJECT, "error": None}


def expired(rig: Rig) -> None:
    rig.service.expire(rig.endpoint)  # the citizen unsubscribed, or the push service dropped it


def forgotten(rig: Rig) -> None:
    rig.service.reset()  # the push service no longer knows the subscription at all: 404


def fault(status: int, retry_after_s: float | None = None) -> Callable[[Rig], Any]:
    return lambda rig: rig.service.fail(status, retry_after_s=retry_after_s)


def latency(ms: float) -> Callable[[Rig], None]:
    return lambda rig: setattr(rig.service, "latency_ms", ms)


def outcome(expected: str | None) -> Callable[[Rig, Any], None]:
    """What the sender told the store about the subscription (None: nothing)."""

    def check(rig: Rig, _outcome: SendResult | SendError) -> None:
        assert rig.store.outcomes == ([(TO, expected)] if expected else []), rig.store.outcomes
        assert (TO in rig.store.live) == (expected != "gone"), "a gone subscription must not be used again"

    return check


SENT: dict[str, Any] = {"status": "sent", "provider_id_field": "id", "check": outcome("sent")}

CASES = [
    OutgoingCase("an emergency: decrypted as sent, urgency high", push(), sent=[received(ALERT)], **SENT),
    OutgoingCase("a notice goes with normal urgency", push(NOTICE, "bulk"), sent=[received(NOTICE, "normal")], **SENT),
    OutgoingCase("an urgent school notice goes high", push(NOTICE, "reply"), sent=[received(NOTICE)], **SENT),
    OutgoingCase("the TTL is the sender's", push(), sent=[received(ALERT, ttl=600)], options={"ttl_s": 600}, **SENT),
    OutgoingCase("410: the subscription expired", push(), expired, "opted_out", "410", check=outcome("gone")),
    OutgoingCase("404: the push service does not know it", push(), forgotten, "opted_out", "404", check=outcome("gone")),
    OutgoingCase("429 is retried", push(), fault(429), "retry", "429", check=outcome("failed")),
    OutgoingCase("429 with Retry-After", push(), fault(429, 7), "retry", "429", retry_after_s=7.0, check=outcome("failed")),
    OutgoingCase("500 is retried", push(), fault(500), "retry", "500", check=outcome("failed")),
    OutgoingCase("503 with Retry-After", push(), fault(503, 30), "retry", "503", retry_after_s=30.0, check=outcome("failed")),
    OutgoingCase("400 is permanent", push(), fault(400), "permanent", "400", check=outcome("failed")),
    OutgoingCase("413 is permanent", push(), fault(413), "permanent", "413", check=outcome("failed")),
    OutgoingCase("403 is permanent", push(), fault(403), "permanent", "403", check=outcome("failed")),
    OutgoingCase("a VAPID key other than the subscription's: 403", push(), None, "permanent", "403",
                 options={"vapid_key": OTHER_KEY}, check=outcome("failed")),
    OutgoingCase("no live subscription in the store: nothing sent", push(to="sub-0"), None, "opted_out", "gone",
                 check=outcome(None)),
    OutgoingCase("a payload over the 4 KiB limit: nothing sent", push("x" * (MAX_PAYLOAD_BYTES + 1)), None,
                 "permanent", "413", check=outcome(None)),
    OutgoingCase("a payload of exactly the limit", push("x" * MAX_PAYLOAD_BYTES), sent=[{"text": "x" * MAX_PAYLOAD_BYTES}],
                 **SENT),
    OutgoingCase("push service down is retried", push(), None, "retry", None, down=True, check=outcome("failed")),
    # A slow service may still take the message after we gave up: whether it has yet is not checked.
    OutgoingCase("latency beyond the timeout is retried", push(), latency(1000), "retry", None, sent=ANY,
                 options={"timeout_s": 0.3}, check=outcome("failed")),
    OutgoingCase("latency within the timeout succeeds", push(), latency(100), sent=[received(ALERT)],
                 options={"timeout_s": 2}, **SENT),
]  # fmt: skip


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with LocalWebPush() as service:
        yield Rig(service, MemorySubscriptions())


def recorded(rig: Rig) -> list[dict[str, Any]]:
    return [message.as_dict() for message in rig.service.messages]


def secrets(rig: Rig) -> Callable[[], list[str]]:
    """No log line or error may hold the VAPID key, an endpoint or a subscription's keys."""

    def needles() -> list[str]:
        found = [VAPID_KEY, OTHER_KEY, *VAPID_KEY.splitlines()[1:-1]]
        for subscription in rig.service.subscriptions.values():
            keys = subscription.as_json()["keys"]
            found += [subscription.endpoint, subscription.token, keys["p256dh"], keys["auth"]]
        return found

    return needles


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_outgoing(case: OutgoingCase, rig: Rig, caplog: pytest.LogCaptureFixture):
    def make_sender(url: str, vapid_key: str = VAPID_KEY, ttl_s: int = 86400, timeout_s: float = 5.0) -> WebPushSender:
        # the browser subscribed with the gateway's configured key, whatever key this sender signs with
        info = rig.service.subscribe(public_key_b64(load_private_key(VAPID_KEY)))
        info["endpoint"] = info["endpoint"].replace(rig.service.url, url)  # a `down` case points elsewhere
        rig.endpoint = info["endpoint"]
        rig.store.live[TO] = parse_subscription(info, insecure_origins=(url,))
        return WebPushSender(vapid_key, SUBJECT, rig.store, ttl_s=ttl_s, timeout_s=timeout_s)

    await run_outgoing(case, make_sender, rig, recorded, caplog, secrets(rig))


# --- beyond one case ---------------------------------------------------------------------------------


def subscribed(rig: Rig, n: int) -> list[str]:
    keys = []
    for i in range(n):
        info = rig.service.subscribe(public_key_b64(load_private_key(VAPID_KEY)))
        rig.store.live[f"sub-{i}"] = parse_subscription(info, insecure_origins=(rig.url,))
        keys.append(f"sub-{i}")
    return keys


async def test_one_sender_sends_many_at_once_each_encrypted_for_its_browser(rig: Rig):
    keys = subscribed(rig, 30)
    sender = WebPushSender(VAPID_KEY, SUBJECT, rig.store)
    try:
        sends = [sender.send(push({**NOTICE, "body": f"第{i}条"}, "bulk", key)) for i, key in enumerate(keys)]
        results = await asyncio.gather(*sends)
    finally:
        await sender.close()
    assert len({r.provider_id for r in results}) == 30
    by_endpoint = {m.endpoint: m.as_dict()["json"]["body"] for m in rig.service.messages}
    assert by_endpoint == {rig.store.live[key].endpoint: f"第{i}条" for i, key in enumerate(keys)}


async def test_concurrent_sends_keep_their_own_retry_after(rig: Rig):
    first, second, third = subscribed(rig, 3)
    rig.service.fail(429, retry_after_s=3, endpoint=rig.store.live[first].endpoint)
    rig.service.fail(503, retry_after_s=11, endpoint=rig.store.live[second].endpoint)
    sender = WebPushSender(VAPID_KEY, SUBJECT, rig.store)
    try:
        outcomes = await asyncio.gather(
            *(sender.send(push(to=k)) for k in (first, second, third)), return_exceptions=True
        )
    finally:
        await sender.close()
    assert [getattr(o, "retry_after_s", None) for o in outcomes] == [3.0, 11.0, None]
    assert isinstance(outcomes[2], SendResult)


async def test_nothing_of_a_subscription_or_the_payload_reaches_any_log(rig: Rig, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    ok, gone, throttled = subscribed(rig, 3)
    rig.service.expire(rig.store.live[gone].endpoint)
    rig.service.fail(429, endpoint=rig.store.live[throttled].endpoint)
    subscriptions = dict(rig.store.live)
    sender = WebPushSender(VAPID_KEY, SUBJECT, rig.store)
    try:
        await sender.send(push(to=ok))
        for key in (gone, throttled):
            with pytest.raises(SendError):
                await sender.send(push(to=key))
    finally:
        await sender.close()
    assert any(r.name == "channels.webpush.sender" for r in caplog.records), "the capture sees our logs"
    assert "127.0.0.1" in caplog.text  # the push service's host is what lets one follow a failure
    for subscription in subscriptions.values():
        for secret in (subscription.endpoint, subscription.endpoint.rsplit("/", 1)[1], subscription.p256dh):
            assert secret not in caplog.text
        assert subscription.auth not in caplog.text
    assert ALERT["body"] not in caplog.text


async def test_the_sender_round_trips_a_queued_message(rig: Rig):
    (key,) = subscribed(rig, 1)
    message = Outgoing.from_fields(push(to=key).as_fields())  # as a worker reads it from a stream
    sender = WebPushSender(VAPID_KEY, SUBJECT, rig.store)
    assert sender.channel == "webpush"
    try:
        result = await sender.send(message)
        with pytest.raises(SendError) as wrong:
            await sender.send(Outgoing(channel="sms", to="+8613912345678", text="x", ref="message:1"))
    finally:
        await sender.close()
    assert result.provider_id == rig.service.messages[0].id
    assert wrong.value.kind == "permanent"


def test_a_bad_key_or_subject_is_refused_at_start():
    with pytest.raises(ValueError):
        WebPushSender("not a key", SUBJECT, MemorySubscriptions())
    with pytest.raises(ValueError):
        WebPushSender(VAPID_KEY, "ops@example.com", MemorySubscriptions())  # no mailto:
    with pytest.raises(ValueError):
        WebPushSender(VAPID_KEY, "mailto:ops@intranet", MemorySubscriptions())  # no domain pywebpush takes
