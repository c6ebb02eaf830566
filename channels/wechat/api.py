"""Our client for the WeChat Official Account API: the shared access token, messages and the menu.

WeChat's access_token lasts 7200 s and fetching a new one invalidates the old one, so several gateway
and worker processes must share one cached token and let exactly one of them refresh it. The cache
and the refresh lock live in the shared state (Redis, or the in-memory twin for one process); every
write to the cached token happens under that lock, which is what makes "two callers saw 40001, only
one refresh" hold across processes.

Errors become SendError with the kind the dispatcher acts on (see `error_for`). Access tokens, the
app secret and openids never reach logs or error messages: tokens and the secret travel in query
strings, so exceptions that print URLs are never logged or chained, and openids are masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
import uuid
from typing import Any, Protocol

import aiohttp

from channels.base import Outgoing, SendError, SendResult
from channels.wechat.wire import CHANNEL

log = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.weixin.qq.com"
TOKEN_ERRORS = frozenset({40001, 40014, 42001})  # invalid, malformed, expired: refresh once and retry
RETRY_ERRORS = frozenset({-1, 45009, 45011})  # system busy, daily quota, per-minute frequency
ERROR_KINDS = {
    45015: "window_closed",  # outside the 48-hour customer-service window: fall back to a template
    45047: "window_closed",  # the window's reply allowance is used up: same fallback
    43004: "opted_out",  # the user unfollowed the account
    40003: "permanent",  # not an openid of this account
}


class TokenState(Protocol):
    """The shared-state methods the token cache needs (the gateway's StateStore provides them);
    declared here so that channels never import gateway code."""

    async def claim(self, key: str, ttl_s: int) -> bool: ...

    async def release(self, key: str) -> None: ...

    async def get_json(self, key: str) -> Any | None: ...

    async def set_json(self, key: str, value: Any, ttl_s: int | None = None) -> None: ...


def mask(openid: str) -> str:
    """A stable, log-safe stand-in for an openid: lets one correlate log lines without exposing it."""
    return "openid#" + hashlib.sha256(openid.encode()).hexdigest()[:10]


def error_for(errcode: int, errmsg: str = "") -> SendError:
    """The SendError for a WeChat errcode: retry for transient trouble, window_closed and opted_out for
    what the dispatcher handles specially, permanent for anything else (a bad request stays bad)."""
    if errcode in RETRY_ERRORS:
        kind = "retry"
    elif errcode in TOKEN_ERRORS:
        kind = "retry"  # still rejected after a refresh: someone else is rotating the token; try later
    else:
        kind = ERROR_KINDS.get(errcode, "permanent")
    reason = errmsg.split(" rid:")[0][:120] or "WeChat refused the request"  # drop WeChat's request id
    return SendError(kind, reason, code=str(errcode))


async def _read_reply(response: aiohttp.ClientResponse) -> dict[str, Any]:
    # Built by hand rather than raise_for_status(): its exception text carries the URL, and with it
    # the access token or the app secret.
    if response.status >= 500 or response.status == 429:
        raise SendError("retry", f"WeChat answered HTTP {response.status}", code=f"http_{response.status}")
    if response.status != 200:
        raise SendError("permanent", f"WeChat answered HTTP {response.status}", code=f"http_{response.status}")
    try:
        reply = json.loads(await response.read())  # WeChat's Content-Type varies; don't rely on it
    except ValueError:
        raise SendError("retry", "WeChat answered with something that is not JSON") from None
    if not isinstance(reply, dict):
        raise SendError("retry", "WeChat answered with something that is not a JSON object")
    return reply


class AccessTokens:
    """The app's access token, cached in the shared state and refreshed by one caller at a time.

    get() reads the cache; on a miss one caller (per process: an asyncio.Lock; across processes:
    state.claim on the lock key) fetches a new token while the others poll the cache for up to wait_s
    and then fail with SendError("retry"). lock_ttl_s must exceed the HTTP timeout so that a slow
    fetch's lock cannot expire and be released out from under the next holder; it also bounds how long
    a crashed holder blocks the others."""

    def __init__(
        self,
        app_id: str,
        secret: str,
        state: TokenState,
        session: aiohttp.ClientSession,
        api_base: str = DEFAULT_API_BASE,
        *,
        margin_s: int = 300,
        lock_ttl_s: int = 30,
        wait_s: float = 15.0,
        poll_s: float = 0.05,
    ) -> None:
        self.app_id, self._secret, self._state, self._session = app_id, secret, state, session
        self.api_base = api_base.rstrip("/")
        self.margin_s, self.lock_ttl_s, self.wait_s, self.poll_s = margin_s, lock_ttl_s, wait_s, poll_s
        self.cache_key = f"wechat:token:{app_id}"
        self.lock_key = f"wechat:token-lock:{app_id}"
        self._local = asyncio.Lock()  # one waiter per process polls the shared state; the rest queue here

    def __repr__(self) -> str:  # never show the secret
        return f"AccessTokens(app_id={self.app_id!r})"

    async def _cached(self) -> str | None:
        entry = await self._state.get_json(self.cache_key)
        if isinstance(entry, dict) and isinstance(entry.get("token"), str) and entry.get("expires_at", 0) > time.time():
            return entry["token"]
        return None

    async def get(self) -> str:
        """A valid-looking token: the cached one, or a fresh one fetched by exactly one caller."""
        token = await self._cached()
        if token is not None:
            return token
        try:
            async with asyncio.timeout(self.wait_s), self._local:
                return await self._get_or_refresh()
        except TimeoutError:
            raise SendError("retry", f"no WeChat access token within {self.wait_s:g} s (refresh lock busy)") from None

    async def _get_or_refresh(self) -> str:
        while True:
            token = await self._cached()
            if token is not None:
                return token
            if await self._state.claim(self.lock_key, self.lock_ttl_s):
                try:
                    # Another process may have stored a token between our read and our claim.
                    return await self._cached() or await self._fetch_and_store()
                finally:
                    await self._state.release(self.lock_key)
            await asyncio.sleep(self.poll_s)

    async def _fetch_and_store(self) -> str:
        params = {"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret}
        try:
            async with self._session.get(f"{self.api_base}/cgi-bin/token", params=params) as response:
                reply = await _read_reply(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # `from None`: the chained exception could print the URL, which holds the secret.
            raise SendError("retry", f"could not reach WeChat for a token ({type(exc).__name__})") from None
        token, expires_in = reply.get("access_token"), reply.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int) or expires_in <= 0:
            error = error_for(int(reply.get("errcode") or -1), str(reply.get("errmsg", "")))
            if error.code in ("40013", "40125", "40164", "41002", "41004"):  # wrong app id, secret or IP
                error = SendError("permanent", f"WeChat refused our credentials: {error.reason}", code=error.code)
            log.warning("WeChat token request for app %s failed: %s", self.app_id, error)
            raise error
        # Keep a margin so a token is never used in its last minutes, but never more than half its life.
        ttl_s = max(1, expires_in - min(self.margin_s, expires_in // 2))
        await self._state.set_json(self.cache_key, {"token": token, "expires_at": time.time() + ttl_s}, ttl_s=ttl_s)
        log.info("fetched a new WeChat access token for app %s (cached %d s)", self.app_id, ttl_s)
        return token

    async def invalidate(self, bad_token: str) -> None:
        """Drop the cached token if it is still bad_token. Under the refresh lock, so a token that
        another caller has just refreshed is never dropped (which would cost a second refresh)."""
        try:
            async with asyncio.timeout(self.wait_s), self._local:
                while True:  # polled: the lock may be held by another process, which cannot notify us
                    if await self._state.claim(self.lock_key, self.lock_ttl_s):
                        break
                    await asyncio.sleep(self.poll_s)
                try:
                    if await self._cached() == bad_token:
                        await self._state.release(self.cache_key)  # release() deletes the key
                finally:
                    await self._state.release(self.lock_key)
        except TimeoutError:
            # The holder is stuck; its lock expires within lock_ttl_s and a later invalidate succeeds.
            log.warning("could not take the WeChat token lock for app %s to drop a rejected token", self.app_id)


class WeChatApi:
    """The endpoints the gateway uses. Every call fetches the shared token; a token WeChat rejects
    (40001/40014/42001) is invalidated, refreshed once and the call retried once. Failures raise
    SendError (see error_for); HTTP 5xx, timeouts and connection errors are "retry"."""

    def __init__(
        self,
        app_id: str,
        secret: str,
        state: TokenState,
        api_base: str = DEFAULT_API_BASE,
        timeout_s: float = 10,
    ) -> None:
        self.app_id, self._secret, self._state = app_id, secret, state
        self.api_base = api_base.rstrip("/")
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._tokens: AccessTokens | None = None

    def __repr__(self) -> str:  # never show the secret
        return f"WeChatApi(app_id={self.app_id!r}, api_base={self.api_base!r})"

    @property
    def tokens(self) -> AccessTokens:
        # Created on first use: an aiohttp session must be made inside the running event loop.
        if self._tokens is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
            self._tokens = AccessTokens(
                self.app_id,
                self._secret,
                self._state,
                self._session,
                self.api_base,
                lock_ttl_s=math.ceil(self.timeout_s) + 10,
                wait_s=self.timeout_s + 5,
            )
        return self._tokens

    async def send_text(self, openid: str, text: str) -> None:
        """A customer-service text; only reaches followers who wrote within the last 48 hours."""
        await self._call(
            "/cgi-bin/message/custom/send", {"touser": openid, "msgtype": "text", "text": {"content": text}}
        )
        log.debug("WeChat text sent to %s", mask(openid))

    async def send_template(self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None) -> int:
        """A template message (any follower, window or not); returns WeChat's msgid. data maps the
        template's fields to {"value": ..., optional "color": ...}; plain strings are wrapped."""
        fields = {k: v if isinstance(v, dict) else {"value": str(v)} for k, v in data.items()}
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": fields}
        if url:
            body["url"] = url
        reply = await self._call("/cgi-bin/message/template/send", body)
        log.debug("WeChat template message sent to %s", mask(openid))
        return int(reply.get("msgid", 0))

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """Replace the account's custom menu: {"button": [...]} as WeChat documents it."""
        await self._call("/cgi-bin/menu/create", menu)
        log.info("WeChat menu created for app %s", self.app_id)

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        tokens = self.tokens
        token = await tokens.get()
        reply = await self._post(path, token, body)
        if reply.get("errcode") in TOKEN_ERRORS:
            log.info("WeChat rejected the access token (errcode %s); refreshing once", reply["errcode"])
            await tokens.invalidate(token)
            reply = await self._post(path, await tokens.get(), body)
        errcode = reply.get("errcode", 0)
        if errcode:
            error = error_for(int(errcode), str(reply.get("errmsg", "")))
            log.warning("WeChat %s failed: %s", path, error)
            raise error
        return reply

    async def _post(self, path: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        payload = json.dumps(body, ensure_ascii=False).encode()  # UTF-8, not \\u escapes, as WeChat expects
        try:
            async with self._session.post(
                self.api_base + path,
                params={"access_token": token},
                data=payload,
                headers={"Content-Type": "application/json; charset=utf-8"},
            ) as response:
                return await _read_reply(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SendError("retry", f"could not reach WeChat ({type(exc).__name__})") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session, self._tokens = None, None


class WeChatSender:
    """The dispatcher's Sender for WeChat: a template message when the Outgoing carries one (it
    reaches users outside the 48-hour window), otherwise a customer-service text."""

    channel = CHANNEL

    def __init__(self, api: WeChatApi) -> None:
        self.api = api

    async def send(self, message: Outgoing) -> SendResult:
        if message.template:
            template = message.template
            if not template.get("template_id"):
                raise SendError("permanent", "template message without a template_id")
            msgid = await self.api.send_template(
                message.to, str(template["template_id"]), dict(template.get("data") or {}), template.get("url")
            )
            return SendResult(provider_id=str(msgid))
        await self.api.send_text(message.to, message.text)
        # The customer-service API returns no message id; ours lets the outcome still be traced.
        return SendResult(provider_id=f"wechat-{uuid.uuid4().hex}")

    async def close(self) -> None:
        await self.api.close()
