"""A browser's push subscription (`PushSubscription.toJSON()`), parsed and checked before the gateway
keeps it: an https endpoint at a push service, the browser's P-256 public key (p256dh) and its 16-byte
auth secret. The reasons are Chinese sentences for the citizen's page."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

MAX_ENDPOINT = 1024  # real endpoints are ~200 characters; the column holds this many
P256_POINT_BYTES = 65  # an uncompressed point: 0x04, x, y
AUTH_BYTES = 16  # RFC 8291 §3.2
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}\Z")


class SubscriptionError(ValueError):
    """What is wrong with a subscription: `code` for programs, `reason` (Chinese) for the citizen."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@dataclass(frozen=True)
class PushSubscription:
    endpoint: str  # the push service's URL for this browser: a bearer capability, never logged in full
    p256dh: str  # base64url (unpadded) uncompressed P-256 public key of the browser
    auth: str  # base64url (unpadded) auth secret

    def info(self) -> dict[str, Any]:
        """The subscription_info shape pywebpush (and the browser's toJSON) use."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    @property
    def origin(self) -> str:
        """scheme://host[:port] of the push service: the VAPID token's audience (RFC 8292 §2)."""
        parts = urlsplit(self.endpoint)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def host(self) -> str:
        """The push service's host name: what logs may show of an endpoint."""
        return urlsplit(self.endpoint).hostname or "-"


def b64url_decode(text: str) -> bytes:
    """Strict base64url (padding optional): ValueError for anything else, standard base64 included."""
    if not _B64URL.match(text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _endpoint(value: object, insecure_origins: tuple[str, ...], push_hosts: tuple[str, ...] | None) -> str:
    if not isinstance(value, str) or not value:
        raise SubscriptionError("endpoint", "订阅信息缺少推送地址（endpoint）。")
    if len(value) > MAX_ENDPOINT:
        raise SubscriptionError("endpoint", f"推送地址过长（最多{MAX_ENDPOINT}个字符）。")
    try:
        parts = urlsplit(value)
        malformed = not parts.hostname or bool(parts.username or parts.password) or parts.port == 0
    except ValueError:  # urlsplit's port check: not a number, or out of range
        malformed = True
    if malformed:
        raise SubscriptionError("endpoint", "推送地址格式不正确。")
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.scheme != "https" and origin not in insecure_origins:
        # A real push service is always https; plain http only for the local one (tests, the demo).
        raise SubscriptionError("endpoint_https", "推送地址必须是HTTPS地址。")
    host = (parts.hostname or "").lower()  # never empty: `malformed` above
    if push_hosts is not None and origin not in insecure_origins:
        # Subscriptions come from citizens: without this list the gateway would POST wherever one points it.
        if not any(host == h or host.endswith(f".{h}") for h in push_hosts):
            raise SubscriptionError(
                "endpoint_host", "不支持这个推送服务，请换用常见浏览器（Chrome、Edge、Firefox、Safari）。"
            )
    return value


def _key(keys: dict[str, Any], name: str, size: int) -> bytes:
    value = keys.get(name)
    if not isinstance(value, str) or not value:
        raise SubscriptionError("keys", "订阅信息缺少加密密钥（keys.p256dh 和 keys.auth）。")
    try:
        raw = b64url_decode(value)
    except ValueError:
        raw = b""
    if len(raw) != size:
        what = "p256dh必须是P-256公钥" if name == "p256dh" else f"auth必须是{AUTH_BYTES}字节的密钥"
        raise SubscriptionError(name, f"{what}（base64url编码）。")
    return raw


def parse_subscription(
    raw: object, *, insecure_origins: tuple[str, ...] = (), push_hosts: tuple[str, ...] | None = None
) -> PushSubscription:
    """The subscription a browser sent, checked; SubscriptionError says what is wrong.

    insecure_origins: http:// origins accepted anyway (the local push service of tests and the demo).
    push_hosts: the push services' host names accepted (subdomains too); None accepts any https host."""
    if not isinstance(raw, dict):
        raise SubscriptionError("subscription", "订阅信息必须是JSON对象。")
    endpoint = _endpoint(raw.get("endpoint"), insecure_origins, push_hosts)
    keys = raw.get("keys")
    if not isinstance(keys, dict):
        raise SubscriptionError("keys", "订阅信息缺少加密密钥（keys.p256dh 和 keys.auth）。")
    point = _key(keys, "p256dh", P256_POINT_BYTES)
    auth = _key(keys, "auth", AUTH_BYTES)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)  # on the curve, uncompressed
    except ValueError:
        raise SubscriptionError("p256dh", "p256dh必须是P-256公钥（base64url编码）。") from None
    return PushSubscription(endpoint, b64url_encode(point), b64url_encode(auth))
