"""The local push service keeps RFC 8030/8291/8292: checked with requests built by hand (a JWT signed with
PyJWT, a body encrypted with http_ece: not the gateway's sender), through its control endpoints, as a
separate process, and by pywebpush's synchronous client (requests)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pywebpush import WebPushException, webpush

from channels.webpush.subscription import b64url_decode, b64url_encode
from channels.webpush.vapid import generate_private_key_pem, load_private_key, public_key_b64
from providers.webpush_api import LocalWebPush
from tests.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVER_KEY = load_private_key(generate_private_key_pem())  # the application server's VAPID key
OTHER_KEY = load_private_key(generate_private_key_pem())
SUBJECT = "mailto:ops@karamay.example"


@pytest.fixture
async def push() -> AsyncIterator[LocalWebPush]:
    async with LocalWebPush() as service:
        yield service


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def token(audience: str, key: ec.EllipticCurvePrivateKey = SERVER_KEY, **claims: Any) -> str:
    payload = {"aud": audience, "exp": int(time.time()) + 3600, "sub": SUBJECT, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, key, algorithm="ES256")


def vapid(audience: str, key: ec.EllipticCurvePrivateKey = SERVER_KEY, k: str | None = None, **claims: Any) -> str:
    return f"vapid t={token(audience, key, **claims)}, k={k or public_key_b64(key)}"


def encrypt(subscription: dict[str, Any], text: str) -> bytes:
    """aes128gcm for this subscription (RFC 8291), with http_ece directly."""
    return http_ece.encrypt(
        text.encode(),
        private_key=ec.generate_private_key(ec.SECP256R1()),
        dh=b64url_decode(subscription["keys"]["p256dh"]),
        auth_secret=b64url_decode(subscription["keys"]["auth"]),
        version="aes128gcm",
    )


@dataclass
class Request:
    """One POST to a subscription's endpoint; headers=None drops one, a callable header gets the origin."""

    authorization: Any = "valid"
    headers: dict[str, str | None] = field(default_factory=dict)
    body: bytes | None = None  # None: "你好" encrypted for the subscription


async def send(
    http: aiohttp.ClientSession, push: LocalWebPush, subscription: dict, request: Request
) -> aiohttp.ClientResponse:
    headers = {"TTL": "60", "Content-Encoding": "aes128gcm", "Urgency": "high"}
    auth = request.authorization
    headers["Authorization"] = vapid(push.url) if auth == "valid" else auth(push.url) if callable(auth) else auth
    headers.update(request.headers)
    headers = {k: v for k, v in headers.items() if v is not None}
    body = encrypt(subscription, "你好") if request.body is None else request.body
    async with http.post(subscription["endpoint"], data=body, headers=headers) as response:
        await response.read()
        return response


# --- the push endpoint -----------------------------------------------------------------------------


async def test_a_valid_push_is_accepted_and_decrypted_as_the_browser_would(push, http):
    subscription = push.subscribe(public_key_b64(SERVER_KEY))
    assert subscription["endpoint"].startswith(f"{push.url}/push/")
    assert set(subscription["keys"]) == {"p256dh", "auth"} and subscription["expirationTime"] is None
    response = await send(http, push, subscription, Request(headers={"Topic": "air-quality"}))
    assert response.status == 201
    (message,) = push.messages
    assert response.headers["Location"] == f"{push.url}/message/{message.id}"
    assert (message.text, message.ttl, message.urgency, message.topic) == ("你好", 60, "high", "air-quality")
    assert message.subject == SUBJECT and message.error is None


REFUSED = [
    ("no Authorization", None, 401),
    ("the legacy WebPush scheme", lambda aud: f"WebPush {token(aud)}", 401),
    ("t= without k=", lambda aud: f"vapid t={token(aud)}", 401),
    ("k= that is no P-256 key", lambda aud: vapid(aud, k="BAAA"), 401),
    ("another application server's key", lambda aud: vapid(aud, OTHER_KEY), 403),
    ("signed by another key under ours", lambda aud: vapid(aud, OTHER_KEY, k=public_key_b64(SERVER_KEY)), 401),
    ("aud of another push service", lambda aud: vapid("https://fcm.googleapis.com"), 401),
    ("aud with a path", lambda aud: vapid(f"{aud}/push"), 401),
    ("expired", lambda aud: vapid(aud, exp=int(time.time()) - 10), 401),
    ("expiring in more than 24 hours", lambda aud: vapid(aud, exp=int(time.time()) + 25 * 3600), 401),
    ("no exp", lambda aud: vapid(aud, exp=None), 401),
    ("no sub", lambda aud: vapid(aud, sub=None), 401),
    ("sub not mailto: or https:", lambda aud: vapid(aud, sub="ops@karamay.example"), 401),
    ("an HS256 token", lambda aud: f"vapid t={jwt.encode({'aud': aud}, 'k' * 32, algorithm='HS256')}, "
                                   f"k={public_key_b64(SERVER_KEY)}", 401),
]  # fmt: skip


@pytest.mark.parametrize(("name", "authorization", "status"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_vapid_is_verified(push, http, name, authorization, status):
    subscription = push.subscribe(public_key_b64(SERVER_KEY))
    response = await send(http, push, subscription, Request(authorization=authorization))
    assert response.status == status, name
    assert push.messages == []


HEADERS = [
    ("no TTL", {"TTL": None}, None, 400),
    ("a negative TTL", {"TTL": "-1"}, None, 400),
    ("an unknown Urgency", {"Urgency": "urgent"}, None, 400),
    ("a Topic over 32 characters", {"Topic": "t" * 33}, None, 400),
    ("a body over 4096 bytes", {}, b"x" * 4097, 413),
    ("the older aesgcm encoding", {"Content-Encoding": "aesgcm"}, None, 415),
]


@pytest.mark.parametrize(("name", "headers", "body", "status"), HEADERS, ids=[h[0] for h in HEADERS])
async def test_requests_are_checked(push, http, name, headers, body, status):
    subscription = push.subscribe(public_key_b64(SERVER_KEY))
    assert (await send(http, push, subscription, Request(headers=headers, body=body))).status == status, name
    assert push.messages == []


async def test_a_body_it_cannot_decrypt_is_still_accepted_as_push_services_do(push, http):
    subscription = push.subscribe(public_key_b64(SERVER_KEY))
    other = push.subscribe(public_key_b64(SERVER_KEY))
    response = await send(http, push, subscription, Request(body=encrypt(other, "给别人的")))
    assert response.status == 201
    assert push.messages[0].text is None and push.messages[0].error


async def test_unknown_expired_and_faulted_subscriptions(push, http):
    subscription = push.subscribe(public_key_b64(SERVER_KEY))
    unknown = {**subscription, "endpoint": f"{push.url}/push/not-a-subscription"}
    assert (await send(http, push, unknown, Request())).status == 404
    push.fail(429, retry_after_s=12)
    throttled = await send(http, push, subscription, Request())
    assert (throttled.status, throttled.headers["Retry-After"]) == (429, "12")
    assert (await send(http, push, subscription, Request())).status == 201  # the fault was for one push
    push.expire(subscription["endpoint"])
    assert (await send(http, push, subscription, Request())).status == 410
    assert push.stats()["refused"] == {"404": 1, "410": 1, "429": 1}


# --- control endpoints, another process, another client ---------------------------------------------


async def control(http: aiohttp.ClientSession, url: str, path: str, body: Any = None, method: str = "POST") -> Any:
    async with http.request(method, f"{url}/_control/{path}", json=body) as response:
        assert response.status < 300, (path, response.status, await response.text())
        return await response.json()


async def test_control_endpoints_drive_the_service_from_another_process(push, http):
    subscription = await control(
        http, push.url, "subscriptions", {"application_server_key": public_key_b64(SERVER_KEY)}
    )
    await control(http, push.url, "faults", {"status": 503, "retry_after_s": 5})
    assert (await send(http, push, subscription, Request())).status == 503
    assert (await send(http, push, subscription, Request())).status == 201
    page = await control(http, push.url, "messages", method="GET")
    assert [m["text"] for m in page["messages"]] == ["你好"] and page["next"] == 1
    await control(http, push.url, "expire", {"endpoint": subscription["endpoint"]})
    assert (await send(http, push, subscription, Request())).status == 410
    await control(http, push.url, "config", {"latency_ms": 5})
    stats = await control(http, push.url, "stats", method="GET")
    assert stats["accepted"] == 1 and stats["expired"] == 1 and stats["latency_ms"] == 5
    await control(http, push.url, "reset")
    assert (await send(http, push, subscription, Request())).status == 404  # forgotten
    for path, body in [("subscriptions", {"application_server_key": "nope"}), ("faults", {"status": 200}),
                       ("config", {"latency_ms": -1}), ("expire", {"endpoint": "x"})]:  # fmt: skip
        async with http.post(f"{push.url}/_control/{path}", json=body) as response:
            assert response.status in (400, 404), path


async def test_pywebpush_sync_client_is_understood(push):
    subscription = push.subscribe(public_key_b64(SERVER_KEY))
    pem = generate_private_key_pem()
    push_for_pem = push.subscribe(public_key_b64(load_private_key(pem)))

    def run() -> None:
        sent = webpush(push_for_pem, "城市通知", vapid_private_key=_raw(pem), vapid_claims={"sub": SUBJECT}, ttl=30)
        assert sent.status_code == 201
        with pytest.raises(WebPushException) as refused:  # signed with a key the subscription does not know
            webpush(subscription, "x", vapid_private_key=_raw(pem), vapid_claims={"sub": SUBJECT}, ttl=30)
        assert refused.value.status_code == 403

    await asyncio.to_thread(run)
    assert [(m.text, m.ttl) for m in push.messages] == [("城市通知", 30)]


def _raw(pem: str) -> str:
    """The 32-byte raw private key in base64url, the form pywebpush reads from a string."""
    return b64url_encode(load_private_key(pem).private_numbers().private_value.to_bytes(32, "big"))


async def test_runs_as_its_own_process(http):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "providers.webpush_api", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        assert url == f"http://127.0.0.1:{port}"
        subscription = await control(http, url, "subscriptions", {"application_server_key": public_key_b64(SERVER_KEY)})
        headers = {"TTL": "0", "Content-Encoding": "aes128gcm", "Authorization": vapid(url)}
        async with http.post(subscription["endpoint"], data=encrypt(subscription, "进程"), headers=headers) as response:
            assert response.status == 201
        assert [m["text"] for m in (await control(http, url, "messages", method="GET"))["messages"]] == ["进程"]
    finally:
        process.terminate()  # SIGTERM: the service stops cleanly and exits 0
        assert await asyncio.wait_for(process.wait(), 10) == 0
