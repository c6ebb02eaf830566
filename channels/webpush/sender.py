"""Sends broadcasts to browsers through their push services (RFC 8030) with pywebpush: the payload is
encrypted for the subscription (RFC 8291, aes128gcm) and the request carries a VAPID token signed with
our key (RFC 8292, `Authorization: vapid t=…, k=…`). pywebpush 2.x sends with aiohttp (webpush_async);
one ClientSession serves every send.

`Outgoing.to` names a subscription the gateway keeps (a SubscriptionStore), not the endpoint itself:
the endpoint and keys are a bearer capability and stay in the database, out of queues and logs, and a
subscription that died after the fan-out is seen before anything is sent.

The push service's answers become the dispatcher's SendError kinds: 201 sent; 404/410 the subscription
is gone (recorded, "opted_out": the broadcast falls back to SMS); 429 and 5xx, timeouts and unreachable
services "retry" (Retry-After honoured); 400, 401, 403, 413 and other 4xx "permanent"."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Protocol

import aiohttp
from py_vapid import Vapid, VapidException
from pywebpush import WebPushException, webpush_async

from channels.base import Outgoing, SendError, SendResult
from channels.http import retry_after_s
from channels.webpush.subscription import PushSubscription
from channels.webpush.vapid import VapidKeyError, check_subject, load_private_key

log = logging.getLogger(__name__)

CHANNEL = "webpush"
# A push service takes at most 4096 bytes of encrypted body (RFC 8291 §4): less the aes128gcm header
# (salt 16, record size 4, key id length 1, key id 65), the padding delimiter and the 16-byte tag.
MAX_PAYLOAD_BYTES = 4096 - 86 - 1 - 16
URGENCY = {"emergency": "high", "reply": "high", "bulk": "normal"}  # RFC 8030 §5.3, by dispatcher priority
GONE = (404, 410)


class SubscriptionStore(Protocol):
    """Where the gateway keeps subscriptions; keys are what Outgoing.to holds."""

    async def find(self, key: str) -> PushSubscription | None:
        """The live subscription, or None when it is gone or unknown."""

    async def record(self, key: str, outcome: str) -> None:
        """What the push service said: "sent", "failed" (worth another try later) or "gone" (never again)."""


def classify(status: int | None, retry_after: str | None = None) -> SendError:
    """A push service's HTTP status → what the dispatcher should do."""
    reason = f"push service HTTP {status}" if status else "push request refused before sending"
    code = str(status) if status else None
    if status in GONE:
        return SendError("opted_out", f"{reason}: subscription expired or unsubscribed", code)
    if status is not None and (status == 429 or status >= 500):
        return SendError("retry", reason, code, retry_after_s(retry_after))
    return SendError("permanent", reason, code)


class WebPushSender:
    """The Sender for channel "webpush". One instance serves any number of concurrent sends."""

    channel = CHANNEL

    def __init__(
        self,
        vapid_private_key: str,
        subject: str,
        subscriptions: SubscriptionStore,
        *,
        ttl_s: int = 24 * 3600,
        timeout_s: float = 10.0,
    ) -> None:
        self._vapid = Vapid(private_key=load_private_key(vapid_private_key))
        self.subject = check_subject(subject)
        try:  # py_vapid is stricter about the subject than RFC 8292: find out now, not at the first send
            self._vapid.sign({"sub": subject, "aud": "https://push.example.com"})
        except VapidException as exc:
            raise VapidKeyError(f"py_vapid refuses the VAPID subject: {exc}") from None
        self.subscriptions = subscriptions
        self.ttl_s, self.timeout_s = ttl_s, timeout_s
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        # Opened on first use: a ClientSession needs a running loop.
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        return self._http

    async def send(self, message: Outgoing) -> SendResult:
        if message.channel != self.channel:
            raise SendError("permanent", f"WebPushSender sends webpush, not {message.channel}")
        if len(message.text.encode()) > MAX_PAYLOAD_BYTES:
            raise self._failed(message, SendError("permanent", f"payload over {MAX_PAYLOAD_BYTES} bytes", "413"))
        subscription = await self.subscriptions.find(message.to)
        if subscription is None:
            raise self._failed(message, SendError("opted_out", "no live push subscription", "gone"))
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._push(subscription, message)
        except WebPushException as exc:
            # exc's text holds the push service's answer; the reason below holds its status only
            error = classify(exc.status_code, exc.retry_after)
        except TimeoutError:
            error = SendError("retry", f"no answer from the push service within {self.timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            error = SendError("retry", f"push service unreachable: {type(exc).__name__}")
        except ValueError:  # keys that decode but are no P-256 point: encryption is impossible
            error = SendError("permanent", "unusable subscription keys")
        else:
            await self.subscriptions.record(message.to, "sent")
            provider_id = _message_id(response.headers.get("Location"))
            log.debug("push service %s accepted %s as %s", subscription.host, message.ref, provider_id)
            return SendResult(provider_id=provider_id, status="sent")
        await self.subscriptions.record(message.to, "gone" if error.kind == "opted_out" else "failed")
        raise self._failed(message, error, subscription)

    async def _push(self, subscription: PushSubscription, message: Outgoing) -> aiohttp.ClientResponse:
        response = await webpush_async(
            subscription.info(),
            message.text,
            vapid_private_key=self._vapid,
            # a new dict each time: pywebpush writes aud (this endpoint's origin) and exp into it
            vapid_claims={"sub": self.subject},
            ttl=self.ttl_s,
            headers={"Urgency": URGENCY.get(message.priority, "normal")},
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            aiohttp_session=self._session(),
        )
        assert isinstance(response, aiohttp.ClientResponse)  # a str only with curl=True
        return response

    @staticmethod
    def _failed(message: Outgoing, error: SendError, subscription: PushSubscription | None = None) -> SendError:
        where = f" at {subscription.host}" if subscription else ""
        log.info("web push of %s%s failed: %s", message.ref, where, error)
        return error

    async def close(self) -> None:
        """Close the HTTP session; a later send opens a new one."""
        if self._http is not None:
            await self._http.close()
        self._http = None


def _message_id(location: str | None) -> str:
    """The push service's id for the message: the last segment of its Location (RFC 8030 §5), else ours."""
    tail = (location or "").rstrip("/").rsplit("/", 1)[-1]
    return tail[-64:] if tail else f"webpush-{uuid.uuid4().hex}"
