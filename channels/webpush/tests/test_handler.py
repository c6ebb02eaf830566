"""The subscription endpoint and the key endpoint through the shared channel harness: what a page may
post, and the reason it is told when it may not. The gateway's side (which sessions have a
conversation) is the in-memory registrar; the SQL one is tested end to end in gateway/broadcast/tests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from channels.harness import IncomingCase, run_incoming
from channels.webpush.handler import WebPushChannel

from .store import MemorySubscriptions
from .test_subscription import HOSTS, fixture

PATH = "/api/webpush/subscriptions"
SESSION = "k3Jd9_fQ2mZxTq0v"  # a web chat session with a conversation
STRANGER = "a9Zb8Yc7Xd6We5Vf"  # well-formed, but no conversation has it
PUBLIC_KEY = "BPublicKeyOfTheGateway"  # what GET /api/webpush/key hands out, as configured
JSON = "application/json"
CHROME = fixture("chrome")


def body(subscription: Any = CHROME, **fields: Any) -> str:
    return json.dumps({"session": SESSION, "subscription": subscription, **fields}, ensure_ascii=False)


def refused(name: str, payload: str | bytes, status: int, says: str, method: str = "POST") -> IncomingCase:
    return IncomingCase(name, PATH, payload, method=method, content_type=JSON, status=status, response_contains=says)


CASES = [
    IncomingCase("a browser's subscription", PATH, body(), content_type=JSON, status=201, response='{"subscribed": true}'),
    IncomingCase("Firefox's", PATH, body(fixture("firefox")), content_type=JSON, status=201),
    IncomingCase("the same again (a second click)", PATH, body(), content_type=JSON, status=201, repeat=2),
    IncomingCase("the public key", "/api/webpush/key", "", method="GET", response=f'{{"public_key": "{PUBLIC_KEY}"}}'),
    refused("not JSON", "subscription=1", 400, "JSON"),
    refused("not UTF-8", b"\xff\xfe{}", 400, "JSON"),
    refused("a JSON list", "[1, 2]", 400, "JSON"),
    refused("deeply nested JSON", "[" * 20_000 + "]" * 20_000, 400, "JSON"),
    refused("no session", json.dumps({"subscription": CHROME}), 400, "session"),
    refused("a malformed session", body(session="a b"), 400, "session"),
    refused("no subscription", json.dumps({"session": SESSION}), 400, "JSON对象"),
    refused("no keys", body({"endpoint": CHROME["endpoint"]}), 400, "keys.p256dh"),
    refused("no auth key", body({**CHROME, "keys": {"p256dh": CHROME["keys"]["p256dh"]}}), 400, "keys.auth"),
    refused("a broken p256dh", body({**CHROME, "keys": {**CHROME["keys"], "p256dh": "BAAA"}}), 400, "P-256"),
    refused("a plain-http endpoint", body({**CHROME, "endpoint": "http://fcm.googleapis.com/fcm/send/x"}), 400, "HTTPS"),
    refused("not a push service", body({**CHROME, "endpoint": "https://intranet.example/x"}), 400, "推送服务"),
    refused("an unknown session", body(session=STRANGER), 404, "请先向助手发送一条消息"),
    refused("GET is not allowed", "", 405, "", method="GET"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_subscribe(case: IncomingCase, caplog: pytest.LogCaptureFixture):
    registrar = MemorySubscriptions(sessions=(SESSION,))

    def routes(_intake: Any) -> list:
        return WebPushChannel(registrar, PUBLIC_KEY, push_hosts=HOSTS).routes()

    # nothing of the subscription reaches the logs: the endpoint is a capability, the keys are secrets
    secrets = [CHROME["endpoint"], CHROME["endpoint"].rsplit("/", 1)[1], *CHROME["keys"].values(), SESSION]
    await run_incoming(case, routes, caplog, secrets)
    accepted = case.repeat if case.status == 201 else 0
    assert len(registrar.subscribed) == accepted
    for session, subscription in registrar.subscribed:
        assert session == SESSION and subscription.info()["keys"] == json.loads(case.body)["subscription"]["keys"]
