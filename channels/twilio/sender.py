"""Sends our SMS through Twilio's Messages API with the real `twilio` package, to any base URL.

The same code talks to api.twilio.com in production and to providers.twilio_api (the local
Twilio-compatible server) in tests, the demo and the benchmark: only `api_base` differs.

Twilio's answers become the dispatcher's SendError kinds: 429 and 5xx, timeouts and connection
failures are worth retrying ("retry", with Retry-After when Twilio gives one); 21610 means the citizen
unsubscribed ("opted_out"); any other 4xx (21211 invalid number, 20003 bad credentials …) will not get
better by itself ("permanent").
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from channels.base import Outgoing, SendError, SendResult
from channels.http import retry_after_s
from channels.sms.wire import CHANNEL

log = logging.getLogger(__name__)

# twilio's HTTP clients log every request at INFO (URL, query parameters, headers): a message lookup
# carries the To number in its query, and what they log may grow with any release. Citizens' phone
# numbers must never reach our logs, so these loggers pass warnings only, whatever the root level.
for _name in ("twilio.http_client", "twilio.async_http_client"):
    logging.getLogger(_name).setLevel(logging.WARNING)

OPTED_OUT_CODE = 21610
_NUMBER = re.compile(r"\+?\d{7,}")  # Twilio's error text may quote the To number (21211)

# Retry-After of the response to *this* send. TwilioRestException carries no headers, so an aiohttp
# trace hook drops them here; a context variable keeps concurrent sends (separate tasks) apart.
_response_headers: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "twilio_response_headers", default=None
)


async def _on_request_end(session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
    box = _response_headers.get()
    if box is not None and "Retry-After" in params.response.headers:
        box["Retry-After"] = params.response.headers["Retry-After"]


def _scrub(text: str, number: str) -> str:
    if number:  # even a malformed, short "number" is the citizen's
        text = text.replace(number, "<number>")
    return _NUMBER.sub("<number>", text)


def classify(
    status: int, code: int | None, message: str, to: str = "", retry_after_s: float | None = None
) -> SendError:
    """Twilio's HTTP status and error code → what the dispatcher should do. `to` is scrubbed from
    Twilio's message, which may quote it."""
    code_text = str(code) if code is not None else None
    reason = f"Twilio HTTP {status}: {_scrub(message, to)}"
    if code == OPTED_OUT_CODE:
        return SendError("opted_out", reason, code_text)
    if status == 429 or status >= 500:
        return SendError("retry", reason, code_text, retry_after_s)
    return SendError("permanent", reason, code_text)


class TwilioSender:
    """The Sender for channel "sms". One instance serves any number of concurrent sends."""

    channel = CHANNEL

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        api_base: str | None = None,
        status_callback: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.account_sid = account_sid
        self.from_number = from_number
        self.api_base = api_base
        self.status_callback = status_callback
        self.timeout_s = timeout_s
        self._auth_token = auth_token
        self._client: Client | None = None
        self._http: AsyncTwilioHttpClient | None = None

    def _twilio(self) -> Client:
        # Built on first use: the HTTP client opens an aiohttp session, which needs a running loop.
        if self._client is None:
            trace = aiohttp.TraceConfig()
            trace.on_request_end.append(_on_request_end)
            self._http = AsyncTwilioHttpClient(timeout=self.timeout_s, trace_configs=[trace])
            # An explicit environment: TWILIO_REGION / TWILIO_EDGE in the process environment would
            # otherwise rewrite the host of every request, api_base included.
            environment = {"TWILIO_ACCOUNT_SID": self.account_sid}
            client = Client(self.account_sid, self._auth_token, http_client=self._http, environment=environment)
            if self.api_base:
                # The one place the API's address is chosen: the Messages resource lives on the `api`
                # domain (twilio.rest.api.ApiBase, a twilio.base.domain.Domain), whose base_url
                # prefixes every request URL; it defaults to https://api.twilio.com.
                client.api.base_url = self.api_base.rstrip("/")
            self._client = client
        return self._client

    async def send(self, message: Outgoing) -> SendResult:
        if message.channel != self.channel:
            raise SendError("permanent", f"TwilioSender sends sms, not {message.channel}")
        kwargs: dict[str, Any] = {"to": message.to, "from_": self.from_number, "body": message.text}
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback
        client = self._twilio()
        headers: dict[str, str] = {}
        token = _response_headers.set(headers)
        try:
            # The async twilio client passes no timeout of its own to aiohttp (it only keeps the
            # value), so the deadline is enforced here.
            async with asyncio.timeout(self.timeout_s):
                created = await client.messages.create_async(**kwargs)
        except TwilioRestException as exc:
            error = classify(exc.status, exc.code, exc.msg, message.to, retry_after_s(headers.get("Retry-After")))
            raise self._failed(message, error) from None
        except TwilioServiceException as exc:  # the newer RFC 9457 error shape
            error = classify(exc.status, exc.code, exc.title, message.to, retry_after_s(headers.get("Retry-After")))
            raise self._failed(message, error) from None
        except TimeoutError:
            raise self._failed(
                message, SendError("retry", f"no answer from Twilio within {self.timeout_s:g} s")
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise self._failed(message, SendError("retry", f"Twilio unreachable: {type(exc).__name__}")) from None
        except ValueError:  # a success status with a body that is not Twilio's JSON
            raise self._failed(message, SendError("retry", "unreadable answer from Twilio")) from None
        finally:
            _response_headers.reset(token)
        log.debug("twilio accepted %s as %s (%s)", message.ref, created.sid, created.status)
        return SendResult(provider_id=created.sid, status=created.status or "queued")

    @staticmethod
    def _failed(message: Outgoing, error: SendError) -> SendError:
        # `from None` above: the twilio exception's text holds the request URL and Twilio's message,
        # which may quote the number; the SendError carries a scrubbed reason instead.
        log.info("twilio send of %s failed: %s", message.ref, error)
        return error

    async def close(self) -> None:
        """Close the HTTP session; a later send opens a new one."""
        if self._http is not None:
            await self._http.close()
        self._client, self._http = None, None
