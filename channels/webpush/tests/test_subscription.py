"""Subscriptions as browsers hand them over (testdata/: the toJSON() shapes of Chrome, Firefox, Safari
and Edge, with real P-256 keys), and what parse_subscription refuses, with the Chinese reason."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from channels.webpush.subscription import MAX_ENDPOINT, SubscriptionError, parse_subscription

DATA = Path(__file__).with_name("testdata")
BROWSERS = ("chrome", "firefox", "safari", "edge")
HOSTS = ("fcm.googleapis.com", "updates.push.services.mozilla.com", "notify.windows.com", "push.apple.com")
LOCAL = "http://127.0.0.1:8183"


def fixture(name: str = "chrome", **changes: Any) -> dict[str, Any]:
    subscription = json.loads((DATA / f"subscription_{name}.json").read_text())
    keys = {**subscription["keys"], **changes.pop("keys", {})}
    return {**subscription, "keys": keys, **changes}


@pytest.mark.parametrize("browser", BROWSERS)
def test_what_each_browser_sends_is_accepted_as_it_is(browser: str):
    raw = fixture(browser)
    parsed = parse_subscription(raw, push_hosts=HOSTS)
    assert parsed.info() == {"endpoint": raw["endpoint"], "keys": raw["keys"]}
    assert parsed.origin.startswith("https://") and parsed.host in raw["endpoint"]


def test_padded_keys_are_stored_unpadded():
    raw = fixture()
    padded = fixture(keys={k: v + "=" * (-len(v) % 4) for k, v in raw["keys"].items()})
    assert parse_subscription(padded).info()["keys"] == raw["keys"]


@dataclass
class Bad:
    name: str
    raw: Any
    code: str
    reason: str  # a part of the Chinese reason the page shows
    push_hosts: tuple[str, ...] | None = None


NOT_ON_CURVE = base64.urlsafe_b64encode(b"\x04" + b"\x01" * 64).rstrip(b"=").decode()
STANDARD_B64 = base64.b64encode(bytes(range(250, 255)) * 3 + b"\x00").decode()  # has "+" and "/"
CASES = [
    Bad("a list, not an object", [fixture()], "subscription", "JSON对象"),
    Bad("no endpoint", {"keys": fixture()["keys"]}, "endpoint", "endpoint"),
    Bad("endpoint not a string", fixture(endpoint=42), "endpoint", "endpoint"),
    Bad("plain http endpoint", fixture(endpoint="http://fcm.googleapis.com/fcm/send/x"), "endpoint_https", "HTTPS"),
    Bad("not a URL", fixture(endpoint="fcm.googleapis.com/fcm/send/x"), "endpoint", "格式"),
    Bad("credentials in the URL", fixture(endpoint="https://a:b@fcm.googleapis.com/x"), "endpoint", "格式"),
    Bad("a malformed port", fixture(endpoint="https://fcm.googleapis.com:99999/x"), "endpoint", "格式"),
    Bad("too long", fixture(endpoint="https://fcm.googleapis.com/" + "x" * MAX_ENDPOINT), "endpoint", "过长"),
    Bad("not a push service", fixture(endpoint="https://intranet.example/hook"), "endpoint_host", "推送服务", HOSTS),
    Bad("a look-alike host", fixture(endpoint="https://evilfcm.googleapis.com.example/x"), "endpoint_host", "推送服务", HOSTS),
    Bad("no keys", {"endpoint": fixture()["endpoint"]}, "keys", "keys.p256dh"),
    Bad("keys not an object", {**fixture(), "keys": "abc"}, "keys", "keys.p256dh"),
    Bad("no auth", {"endpoint": fixture()["endpoint"], "keys": {"p256dh": fixture()["keys"]["p256dh"]}}, "keys", "keys.auth"),
    Bad("p256dh too short", fixture(keys={"p256dh": "BAAA"}), "p256dh", "P-256"),
    Bad("p256dh not on the curve", fixture(keys={"p256dh": NOT_ON_CURVE}), "p256dh", "P-256"),
    Bad("p256dh in standard base64", fixture(keys={"p256dh": STANDARD_B64}), "p256dh", "base64url"),
    Bad("auth of 12 bytes", fixture(keys={"auth": "AAAAAAAAAAAAAAAA"}), "auth", "16字节"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_refused_with_a_reason(case: Bad):
    with pytest.raises(SubscriptionError) as refused:
        parse_subscription(case.raw, push_hosts=case.push_hosts)
    assert refused.value.code == case.code
    assert case.reason in refused.value.reason


def test_the_local_push_service_may_be_plain_http_but_no_other():
    local = fixture(endpoint=f"{LOCAL}/push/abc")
    assert parse_subscription(local, insecure_origins=(LOCAL,), push_hosts=HOSTS).origin == LOCAL
    with pytest.raises(SubscriptionError):
        parse_subscription(fixture(endpoint="http://127.0.0.1:9999/push/abc"), insecure_origins=(LOCAL,))
