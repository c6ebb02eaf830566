"""A local Web Push service (RFC 8030), for tests and the demo: what Chrome's, Firefox's or Apple's push
service is to a browser, on 127.0.0.1.

Browsers' push services are remote and unreachable here, so this one takes their place for the real
sender (pywebpush). It speaks the documented contract:

* ``POST /push/{token}`` with a ``TTL`` header (required), ``Content-Encoding: aes128gcm`` (RFC 8188 /
  RFC 8291, at most 4096 bytes), optional ``Urgency`` and ``Topic``, and ``Authorization: vapid t=<JWT>,
  k=<public key>`` (RFC 8292). The JWT is VERIFIED: ES256 under the key ``k``, ``aud`` = this service's
  origin, ``exp`` in the future and at most 24 hours away, a ``sub`` claim. ``k`` must be the
  applicationServerKey the subscription was made with.
* Answers as push services do: 201 with a ``Location`` for the message; 400 bad request (no TTL, bad
  Urgency); 401 missing or invalid VAPID; 403 a VAPID key other than the subscription's; 404 unknown
  subscription; 410 expired subscription; 413 body over 4096 bytes; 415 not aes128gcm; 429/5xx faults.

Unlike a real push service it also plays the browser: a subscription is created here (P-256 key pair and
auth secret, as a browser's PushManager makes them; the private key stays here) and every accepted
message is DECRYPTED with ``http_ece``, so a test reads exactly what a browser would show.

Control endpoints (JSON) for tests and other processes; in process, use ``LocalWebPush``'s methods:

* ``POST /_control/subscriptions`` {application_server_key} → {endpoint, expirationTime, keys: {p256dh, auth}}
* ``POST /_control/expire`` {endpoint} (later pushes get 410)
* ``GET /_control/messages`` ?since=&limit= (decrypted) · ``DELETE /_control/messages``
* ``POST /_control/faults`` {status, times, retry_after_s, endpoint} · ``DELETE /_control/faults``
* ``POST /_control/config`` {latency_ms} · ``GET /_control/stats`` · ``POST /_control/reset``

Endpoints are capabilities: the server logs message ids only, never an endpoint or a key.

Run it alone: ``python -m providers.webpush_api --port 8183``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

import http_ece
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from channels.webpush.subscription import b64url_decode, b64url_encode
from channels.webpush.vapid import public_key_b64
from providers.local import LocalServer, serve

log = logging.getLogger(__name__)

MAX_BODY = 4096  # RFC 8291 §4: push services must accept at least this; we accept no more
MAX_VAPID_LIFETIME_S = 24 * 3600  # RFC 8292 §2
URGENCIES = ("very-low", "low", "normal", "high")  # RFC 8030 §5.3
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")  # RFC 8030 §5.4
_AUTH_PARAM = re.compile(r"\s*([tk])\s*=\s*([^,\s]+)\s*")


@dataclass
class _Subscription:
    token: str
    endpoint: str
    server_key: str  # the applicationServerKey it was made with (base64url point)
    private_key: ec.EllipticCurvePrivateKey  # the "browser's" key: this service decrypts with it
    auth: bytes
    expired: bool = False

    def as_json(self) -> dict[str, Any]:
        """What PushSubscription.toJSON() gives a page."""
        keys = {"p256dh": public_key_b64(self.private_key), "auth": b64url_encode(self.auth)}
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": keys}


@dataclass(frozen=True)
class ReceivedPush:
    """One accepted push message, decrypted as the browser would (text None when that failed)."""

    id: str
    endpoint: str
    ttl: int
    urgency: str
    topic: str | None
    subject: str  # the VAPID token's sub claim
    text: str | None
    error: str | None = None
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        try:
            out["json"] = json.loads(self.text) if self.text is not None else None
        except ValueError:
            out["json"] = None
        return out


@dataclass
class Fault:
    """The next `times` pushes (to `endpoint`, or any: "*") get `status`, with Retry-After if given."""

    status: int
    times: int = 1
    retry_after_s: float | None = None
    endpoint: str = "*"

    def __post_init__(self) -> None:
        if not 400 <= int(self.status) <= 599:
            raise ValueError("fault status must be 4xx or 5xx")
        if int(self.times) < 1:
            raise ValueError("times must be at least 1")


class VapidRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def verify_vapid(header: str, audience: str, subscription_key: str, now: float | None = None) -> str:
    """The `sub` claim of a valid `Authorization: vapid t=…, k=…` header; VapidRefused (401/403) otherwise."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise VapidRefused(401, "Authorization must use the vapid scheme (RFC 8292)")
    found: dict[str, str] = {}
    for part in params.split(","):
        if (param := _AUTH_PARAM.fullmatch(part)) is None:
            raise VapidRefused(401, "malformed vapid parameters")
        found[param[1]] = param[2]
    if set(found) != {"t", "k"}:
        raise VapidRefused(401, "vapid needs t= and k=")
    try:
        point = b64url_decode(found["k"])
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise VapidRefused(401, "k is not a P-256 public key") from None
    if b64url_encode(point) != subscription_key:
        raise VapidRefused(403, "the VAPID key is not the one this subscription was made with")
    try:
        claims = jwt.decode(
            found["t"],
            key=public,
            algorithms=["ES256"],
            audience=audience,
            options={"require": ["exp", "aud", "sub"]},
        )
    except jwt.InvalidTokenError as exc:
        raise VapidRefused(401, f"invalid VAPID token: {type(exc).__name__}") from None
    if claims["exp"] - (now if now is not None else time.time()) > MAX_VAPID_LIFETIME_S:
        raise VapidRefused(401, "the VAPID token expires more than 24 hours from now")
    if not isinstance(claims["sub"], str) or not claims["sub"].startswith(("mailto:", "https:")):
        raise VapidRefused(401, "sub must be a mailto: or https: contact")
    return claims["sub"]


class LocalWebPush(LocalServer):
    """The service, its subscriptions and received messages. ``async with LocalWebPush() as push``;
    always binds 127.0.0.1."""

    def __init__(self, port: int = 0, *, latency_ms: float = 0.0) -> None:
        self.port = port
        self.latency_ms = float(latency_ms)
        self.app = self._make_app()
        self.reset()

    # --- in-process control ------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget subscriptions, messages, faults and counters (latency stays)."""
        self.subscriptions: dict[str, _Subscription] = {}
        self.messages: list[ReceivedPush] = []
        self.faults: deque[Fault] = deque()
        self.refused: Counter[int] = Counter()
        self.requests = 0

    def subscribe(self, application_server_key: str) -> dict[str, Any]:
        """A new subscription, as a browser's pushManager.subscribe({applicationServerKey}) makes one."""
        try:
            point = b64url_decode(application_server_key)
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError:
            raise ValueError("application_server_key must be a base64url P-256 public key") from None
        token = secrets.token_urlsafe(32)
        subscription = _Subscription(
            token,
            f"{self.url}/push/{token}",
            b64url_encode(point),
            ec.generate_private_key(ec.SECP256R1()),
            secrets.token_bytes(16),
        )
        self.subscriptions[token] = subscription
        return subscription.as_json()

    def expire(self, endpoint: str) -> None:
        """The browser unsubscribed (or the service expired it): later pushes get 410."""
        self._by_endpoint(endpoint).expired = True

    def fail(self, status: int, *, times: int = 1, retry_after_s: float | None = None, endpoint: str = "*") -> Fault:
        fault = Fault(int(status), int(times), retry_after_s, endpoint)
        self.faults.append(fault)
        return fault

    def received(self, endpoint: str | None = None) -> list[ReceivedPush]:
        return [m for m in self.messages if endpoint is None or m.endpoint == endpoint]

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": len(self.messages),
            "subscriptions": len(self.subscriptions),
            "expired": sum(s.expired for s in self.subscriptions.values()),
            "refused": {str(k): n for k, n in sorted(self.refused.items())},
            "pending_faults": len(self.faults),
            "latency_ms": self.latency_ms,
        }

    def _by_endpoint(self, endpoint: str) -> _Subscription:
        token = endpoint.rstrip("/").rsplit("/", 1)[-1]
        subscription = self.subscriptions.get(token)
        if subscription is None or subscription.endpoint != endpoint:
            raise KeyError("no such subscription")
        return subscription

    # --- HTTP --------------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes(
            [
                web.post("/push/{token}", self._push),
                web.post("/_control/subscriptions", self._c_subscribe),
                web.post("/_control/expire", self._c_expire),
                web.get("/_control/messages", self._c_messages),
                web.delete("/_control/messages", self._c_clear_messages),
                web.post("/_control/faults", self._c_fault),
                web.delete("/_control/faults", self._c_clear_faults),
                web.post("/_control/config", self._c_config),
                web.get("/_control/stats", self._c_stats),
                web.post("/_control/reset", self._c_reset),
            ]
        )
        return app

    def _refuse(self, status: int, reason: str, **headers: str) -> web.Response:
        self.refused[status] += 1
        return web.json_response({"code": status, "errno": status, "error": reason}, status=status, headers=headers)

    def _take_fault(self, endpoint: str) -> Fault | None:
        for fault in self.faults:
            if fault.endpoint in ("*", endpoint):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    async def _push(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        subscription = self.subscriptions.get(request.match_info["token"])
        if subscription is None:
            return self._refuse(404, "no such subscription")
        if self.faults and (fault := self._take_fault(subscription.endpoint)):
            headers = {} if fault.retry_after_s is None else {"Retry-After": f"{fault.retry_after_s:g}"}
            return self._refuse(fault.status, "fault injected", **headers)
        if subscription.expired:
            return self._refuse(410, "subscription expired")
        try:
            subject = verify_vapid(request.headers.get("Authorization", ""), self.url, subscription.server_key)
        except VapidRefused as exc:
            return self._refuse(exc.status, exc.reason)
        ttl_header = request.headers.get("TTL", "")
        if not ttl_header.isdigit():
            return self._refuse(400, "TTL header required (non-negative integer seconds)")
        urgency = request.headers.get("Urgency", "normal")
        if urgency not in URGENCIES:
            return self._refuse(400, f"Urgency must be one of {', '.join(URGENCIES)}")
        topic = request.headers.get("Topic")
        if topic is not None and not _TOPIC.match(topic):
            return self._refuse(400, "Topic must be 1-32 base64url characters")
        body = await request.read()
        if len(body) > MAX_BODY:
            return self._refuse(413, f"payload over {MAX_BODY} bytes")
        if body and request.headers.get("Content-Encoding", "").lower() != "aes128gcm":
            return self._refuse(415, "Content-Encoding must be aes128gcm (RFC 8291)")
        text, error = self._decrypt(subscription, body)
        message = ReceivedPush(
            uuid.uuid4().hex, subscription.endpoint, int(ttl_header), urgency, topic, subject, text, error
        )
        self.messages.append(message)
        log.info("accepted push message %s", message.id)
        return web.Response(status=201, headers={"Location": f"{self.url}/message/{message.id}", "TTL": ttl_header})

    @staticmethod
    def _decrypt(subscription: _Subscription, body: bytes) -> tuple[str | None, str | None]:
        """What the browser would read: a real push service stores the ciphertext blindly, so a message
        that cannot be decrypted is still accepted, and recorded with the reason."""
        if not body:
            return "", None
        try:
            plain = http_ece.decrypt(
                body, private_key=subscription.private_key, auth_secret=subscription.auth, version="aes128gcm"
            )
            return plain.decode("utf-8"), None
        except (http_ece.ECEException, ValueError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    # --- control endpoints -------------------------------------------------------------------------

    async def _control_object(self, request: web.Request) -> dict[str, Any]:
        body = await self._control_body(request)
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="body must be a JSON object")
        return body

    async def _c_subscribe(self, request: web.Request) -> web.Response:
        key = (await self._control_object(request)).get("application_server_key")
        try:
            return web.json_response(self.subscribe(key if isinstance(key, str) else ""), status=201)
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None

    async def _c_expire(self, request: web.Request) -> web.Response:
        endpoint = (await self._control_object(request)).get("endpoint")
        try:
            self.expire(endpoint if isinstance(endpoint, str) else "")
        except KeyError:
            raise web.HTTPNotFound(text="no such subscription") from None
        return web.json_response({"expired": True})

    async def _c_clear_messages(self, request: web.Request) -> web.Response:
        self.messages.clear()
        return web.json_response({"messages": [], "next": 0})

    async def _c_fault(self, request: web.Request) -> web.Response:
        body = await self._control_object(request)
        try:
            fault = self.fail(**body)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"bad fault: {exc}") from None
        return web.json_response(asdict(fault), status=201)

    async def _c_clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({"pending_faults": 0})

    async def _c_config(self, request: web.Request) -> web.Response:
        latency = (await self._control_object(request)).get("latency_ms")
        if not isinstance(latency, int | float) or isinstance(latency, bool) or latency < 0:
            raise web.HTTPBadRequest(text="latency_ms must be a non-negative number")
        self.latency_ms = float(latency)
        return web.json_response(self.stats())

    async def _c_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _c_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.stats())


# --- running it alone ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local Web Push service (RFC 8030) on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8183, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(LocalWebPush(args.port, latency_ms=args.latency_ms)))


if __name__ == "__main__":
    main()
