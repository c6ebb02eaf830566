"""A local server that speaks Twilio's Messages API, for tests, the demo and the benchmark.

Twilio is a paid remote service with no sandbox reachable here, so the real `twilio` client is pointed
at this server instead. It implements the documented contract the gateway relies on:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP Basic auth (account SID, auth
  token) and form parameters To, From or MessagingServiceSid, Body, StatusCallback. Success is 201 with
  a Message resource (status "queued"); errors use Twilio's shape {"code", "message", "more_info",
  "status"} and codes (20003 auth, 21211 bad To, 21602 no Body, 21603 no From, 21604 no To, 21610
  unsubscribed recipient, 21617 Body too long).
* Status callbacks: form POSTs signed with X-Twilio-Signature (the twilio package's RequestValidator
  computes it), "sent" then "delivered" or "undelivered" (with ErrorCode), or "failed" alone, as
  Twilio reports a message that never left.

A test, a demo or a benchmark drives its behaviour in process (``LocalTwilio.fail``, ``opt_out``,
``configure``) or over JSON control endpoints under ``/_control/`` from another process:

* ``GET /_control/config`` · ``POST /_control/config`` {latency_ms, delivery, error_code,
  callback_delay_ms}
* ``POST /_control/faults`` {to, status, code, times, message, retry_after_s} · ``GET`` · ``DELETE``
* ``POST /_control/opt_out`` {number} · ``POST /_control/opt_in`` {number}
* ``GET /_control/messages`` ?to=&offset=&limit= · ``DELETE /_control/messages``
* ``GET /_control/stats`` · ``POST /_control/reset`` (everything back to defaults)

Phone numbers travel in JSON bodies, never in control URLs, so no access log can hold them; the
server itself logs message SIDs only. Like Twilio, a create whose client gave up (timeout) still
completes and is recorded: that is how a retried send can reach a citizen twice.

Built to take a benchmark's 250,000 messages: one compact slotted record per message, no per-message
task (a fixed pool of workers posts the status callbacks from one queue), one shared ClientSession.

Run it alone: ``python -m providers.twilio_api --port 8181 --account-sid AC... --auth-token ...``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from channels.sms.segments import segment_count
from providers.local import serve

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9]\d{7,14}$")  # "+" and 8–15 digits
MAX_BODY = 1600  # Twilio's limit on a concatenated message body, in characters
DELIVERY_OUTCOMES = ("delivered", "undelivered", "failed")
DEFAULT_DELIVERY_ERROR = {"undelivered": 30003, "failed": 30008}  # unreachable handset; unknown error
CALLBACK_TIMEOUT_S = 15.0  # Twilio gives a webhook 15 s

ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21211: "The 'To' number is not a valid phone number.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21609: "Invalid StatusCallback url",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    30003: "Unreachable destination handset",
    30008: "Unknown error",
}
STATUS_FOR_CODE = {20003: 401, 20404: 404, 20429: 429, 20500: 500, 20503: 503}


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One accepted message. Slotted and immutable: a benchmark keeps 250,000 of them."""

    sid: str
    to: str
    from_: str | None
    body: str
    segments: int
    status_callback: str | None
    messaging_service_sid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "segments": self.segments,
            "status_callback": self.status_callback,
            "messaging_service_sid": self.messaging_service_sid,
        }


@dataclass(slots=True)
class Fault:
    """The next `times` creates to `to` ("*": any number) answer with this error. `status` None means
    the message is accepted and its status callbacks end "undelivered" with ErrorCode `code`."""

    to: str
    status: int | None
    code: int
    times: int
    message: str | None = None
    retry_after_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "status": self.status,
            "code": self.code,
            "times": self.times,
            "message": self.message,
            "retry_after_s": self.retry_after_s,
        }


class _CallbackJob(NamedTuple):
    due: float  # loop time
    url: str
    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    statuses: tuple[str, ...]
    error_code: int | None


def _make_fault(
    to: str, status: int | None, code: int | None, times: int, message: str | None, retry_after_s: float | None
) -> Fault:
    if status in (200, 201):
        status = None
    if status is None:
        if code is None:
            raise ValueError("a fault needs a status or a code")
        if not 30000 <= code < 40000:  # a request error named by its code alone
            status = STATUS_FOR_CODE.get(code, 400)
    elif code is None:
        code = {400: 21211, 401: 20003}.get(status, 20000 + status)
    if status is not None and not 400 <= status <= 599:
        raise ValueError(f"fault status must be 4xx or 5xx, not {status}")
    if times < 1:
        raise ValueError("times must be at least 1")
    if not to:
        raise ValueError('a fault needs "to": a number or "*"')
    return Fault(to, status, int(code), int(times), message, retry_after_s)


def _error(status: int, code: int, message: str | None = None, headers: dict[str, str] | None = None) -> web.Response:
    body = {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


class LocalTwilio:
    """The server, its recorded messages and its knobs. Use ``async with LocalTwilio(...) as server``,
    or mount ``make_app()`` in a runner of your own. Always binds 127.0.0.1."""

    def __init__(self, account_sid: str, auth_token: str, port: int = 0, callback_concurrency: int = 8) -> None:
        self.account_sid = account_sid
        self.port = port
        self.error_code: int | None  # set by _set_defaults and configure
        self.messages: list[SentMessage] = []
        self._credentials = (account_sid.encode(), auth_token.encode())
        self._validator = RequestValidator(auth_token)
        self._callback_concurrency = callback_concurrency
        self._faults: deque[Fault] = deque()
        self._opted_out: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._callbacks: asyncio.Queue[_CallbackJob] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._date_second = -1
        self._date_text = ""
        self._set_defaults()
        self._reset_counters()

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._runner is None:
            raise RuntimeError("LocalTwilio is not running")
        return f"http://127.0.0.1:{self.port}"

    def make_app(self) -> web.Application:
        app = web.Application()
        account = "/" + API_VERSION + "/Accounts/{account_sid}"
        app.router.add_post(account + "/Messages.json", self._create)
        app.router.add_get("/_control/config", self._get_config)
        app.router.add_post("/_control/config", self._post_config)
        app.router.add_get("/_control/faults", self._get_faults)
        app.router.add_post("/_control/faults", self._post_fault)
        app.router.add_delete("/_control/faults", self._delete_faults)
        app.router.add_post("/_control/opt_out", self._post_opt_out)
        app.router.add_post("/_control/opt_in", self._post_opt_in)
        app.router.add_get("/_control/messages", self._get_messages)
        app.router.add_delete("/_control/messages", self._delete_messages)
        app.router.add_get("/_control/stats", self._get_stats)
        app.router.add_post("/_control/reset", self._post_reset)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def start(self) -> None:
        # No access log: 250,000 lines would slow a benchmark and tell nobody anything.
        runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> LocalTwilio:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_startup(self, app: web.Application) -> None:
        limit = self._callback_concurrency
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT_S), connector=aiohttp.TCPConnector(limit=limit)
        )
        self._callbacks = asyncio.Queue()
        self._workers = [asyncio.create_task(self._callback_worker()) for _ in range(limit)]

    async def _on_cleanup(self, app: web.Application) -> None:
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- knobs (in process) ---------------------------------------------------------------------

    def fail(
        self,
        to: str = "*",
        status: int | None = None,
        code: int | None = None,
        times: int = 1,
        message: str | None = None,
        retry_after_s: float | None = None,
    ) -> Fault:
        """Queue a fault: the next `times` creates to `to` get it, faults taken in the order queued.
        Give a status (429, 500, 503, 400 …), a code (20429, 21211, 21610 …) or both; a 30xxx code
        alone accepts the message and reports it undelivered with that ErrorCode."""
        fault = _make_fault(to, status, code, times, message, retry_after_s)
        self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self._faults.clear()

    def opt_out(self, number: str) -> None:
        """Every later create to `number` gets 400, code 21610 (the citizen texted STOP/退订)."""
        self._opted_out.add(number)

    def opt_in(self, number: str) -> None:
        self._opted_out.discard(number)

    def configure(
        self,
        *,
        latency_ms: float | None = None,
        delivery: str | None = None,
        error_code: int | None = None,
        callback_delay_ms: float | None = None,
    ) -> None:
        """Change what later requests see; arguments left out keep their value. `error_code` is the
        ErrorCode of undelivered/failed callbacks (default 30003 undelivered, 30008 failed)."""
        if latency_ms is not None:
            if latency_ms < 0:
                raise ValueError("latency_ms must not be negative")
            self.latency_ms = float(latency_ms)
        if delivery is not None:
            if delivery not in DELIVERY_OUTCOMES:
                raise ValueError(f"delivery must be one of {', '.join(DELIVERY_OUTCOMES)}")
            self.delivery = delivery
            self.error_code = None
        if error_code is not None:
            self.error_code = int(error_code)
        if callback_delay_ms is not None:
            if callback_delay_ms < 0:
                raise ValueError("callback_delay_ms must not be negative")
            self.callback_delay_ms = float(callback_delay_ms)

    def config(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "delivery": self.delivery,
            "error_code": self.error_code,
            "callback_delay_ms": self.callback_delay_ms,
            "faults": [fault.as_dict() for fault in self._faults],
            "opted_out": sorted(self._opted_out),
        }

    def clear_messages(self) -> None:
        """Forget accepted messages and zero the counters (pending callbacks still go out)."""
        self.messages.clear()
        self._reset_counters()

    def reset(self) -> None:
        """Everything back to how a new server starts: messages, counters, faults, opt-outs, config."""
        self.clear_messages()
        self._faults.clear()
        self._opted_out.clear()
        self._set_defaults()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self._requests,
            "accepted": len(self.messages),
            "segments": self._segments,
            "rejected": {str(code): n for code, n in sorted(self._rejected.items())},
            "faults_applied": self._faults_applied,
            "callbacks": {
                "pending": self._callbacks.qsize(),
                "sent": self._callbacks_sent,
                "failed": self._callbacks_failed,
            },
        }

    async def callbacks_done(self) -> None:
        """Wait until every status callback queued so far has been attempted."""
        await self._callbacks.join()

    def _set_defaults(self) -> None:
        self.latency_ms = 0.0
        self.delivery = "delivered"
        self.error_code = None
        self.callback_delay_ms = 0.0

    def _reset_counters(self) -> None:
        self._requests = 0
        self._segments = 0
        self._rejected: Counter[int] = Counter()
        self._faults_applied = 0
        self._callbacks_sent = 0
        self._callbacks_failed = 0

    # --- the Messages API -----------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, colon, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        except ValueError:  # binascii.Error
            return False
        sid, token = self._credentials
        # Compare both in full, in constant time, so a wrong SID and a wrong token look alike.
        sid_ok = hmac.compare_digest(login, sid)
        token_ok = hmac.compare_digest(password, token)
        return bool(colon) and sid_ok and token_ok

    def _reject(self, status: int, code: int, message: str | None = None, **headers: str) -> web.Response:
        self._rejected[code] += 1
        return _error(status, code, message, headers or None)

    def _take_fault(self, to: str, delivery: bool) -> Fault | None:
        """The first queued fault for `to` of the kind asked for (a request error, or a delivery
        fault, which only applies to a message that is otherwise accepted)."""
        for fault in self._faults:
            if (fault.status is None) == delivery and fault.to in ("*", to):
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                self._faults_applied += 1
                return fault
        return None

    def _now(self) -> str:
        # Formatting a date costs more than the rest of a create; it only changes once a second.
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            self._date_text = format_datetime(datetime.fromtimestamp(second, UTC))
        return self._date_text

    async def _create(self, request: web.Request) -> web.Response:
        self._requests += 1
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if not self._authorized(request):
            return self._reject(401, 20003, **{"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if request.match_info["account_sid"] != self.account_sid:
            return self._reject(404, 20404)
        form = await request.post()
        to = str(form.get("To", "")).strip()
        from_ = str(form.get("From", "")).strip() or None
        service = str(form.get("MessagingServiceSid", "")).strip() or None
        body = str(form.get("Body", ""))
        callback = str(form.get("StatusCallback", "")).strip() or None

        fault = self._take_fault(to, delivery=False) if self._faults else None
        if fault is not None and fault.status is not None:  # a request fault always has a status
            headers = {} if fault.retry_after_s is None else {"Retry-After": f"{fault.retry_after_s:g}"}
            return self._reject(fault.status, fault.code, fault.message, **headers)
        if not to:
            return self._reject(400, 21604)
        if not from_ and not service:
            return self._reject(400, 21603)
        if not body:
            return self._reject(400, 21602)
        if not E164.match(to):
            return self._reject(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if len(body) > MAX_BODY:
            return self._reject(400, 21617)
        if callback is not None and not callback.startswith(("http://", "https://")):
            return self._reject(400, 21609)
        if to in self._opted_out:
            return self._reject(400, 21610)
        fault = self._take_fault(to, delivery=True) if self._faults else None

        sid = "SM" + uuid.uuid4().hex
        segments = segment_count(body)
        self.messages.append(SentMessage(sid, to, from_, body, segments, callback, service))
        self._segments += segments
        if callback is not None:
            self._queue_callbacks(sid, to, from_, service, callback, fault)

        now = self._now()
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(segments),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if from_ else "accepted",  # a Messaging Service picks the sender later
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": to,
            "uri": f"{uri}.json",
        }
        return web.json_response(resource, status=201)

    # --- status callbacks -----------------------------------------------------------------------

    def _queue_callbacks(
        self, sid: str, to: str, from_: str | None, service: str | None, url: str, fault: Fault | None
    ) -> None:
        code: int | None
        if fault is not None:  # a delivery fault for this number
            outcome, code = "undelivered", fault.code
        else:
            outcome = self.delivery
            code = self.error_code or DEFAULT_DELIVERY_ERROR.get(outcome)
        statuses = ("failed",) if outcome == "failed" else ("sent", outcome)
        due = asyncio.get_running_loop().time() + self.callback_delay_ms / 1000
        self._callbacks.put_nowait(_CallbackJob(due, url, sid, to, from_, service, statuses, code))

    async def _callback_worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            job = await self._callbacks.get()
            try:
                # Jobs leave the queue in the order they were due (one delay for all), so sleeping on
                # the head of the queue never holds back an earlier one.
                wait = job.due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                for status in job.statuses:
                    await self._post_callback(job, status)
            except Exception:
                log.exception("status callback for %s broke", job.sid)
            finally:
                self._callbacks.task_done()

    async def _post_callback(self, job: _CallbackJob, status: str) -> None:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "MessageSid": job.sid,
            "MessageStatus": status,
            "SmsSid": job.sid,
            "SmsStatus": status,
            "To": job.to,
        }
        if job.from_:
            params["From"] = job.from_
        if job.messaging_service_sid:
            params["MessagingServiceSid"] = job.messaging_service_sid
        if status in ("undelivered", "failed") and job.error_code is not None:
            params["ErrorCode"] = str(job.error_code)
        headers = {"X-Twilio-Signature": self._validator.compute_signature(job.url, params)}
        assert self._session is not None
        try:
            async with self._session.post(job.url, data=params, headers=headers) as response:
                await response.read()
                problem = f"HTTP {response.status}" if response.status >= 400 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = type(exc).__name__
        if problem is None:
            self._callbacks_sent += 1
            return
        self._callbacks_failed += 1
        # Log the SID only (no numbers), and not every failure: a receiver that is down would
        # otherwise print a line for each of a benchmark's messages.
        failed = self._callbacks_failed
        level = logging.WARNING if failed == 1 or failed % 1000 == 0 else logging.DEBUG
        log.log(level, "status callback %s for %s failed: %s (%d failures so far)", status, job.sid, problem, failed)

    # --- control endpoints ----------------------------------------------------------------------

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any]:
        try:
            payload = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body must be JSON"}), content_type="application/json"
            ) from exc
        if not isinstance(payload, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "body must be a JSON object"}), content_type="application/json"
            )
        return payload

    @staticmethod
    def _bad(message: str) -> web.Response:
        return web.json_response({"error": message}, status=400)

    async def _get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.config())

    async def _post_config(self, request: web.Request) -> web.Response:
        payload = await self._json(request)
        known = {"latency_ms", "delivery", "error_code", "callback_delay_ms"}
        if unknown := set(payload) - known:
            return self._bad(f"unknown settings: {', '.join(sorted(unknown))}")
        try:
            self.configure(**payload)
        except (TypeError, ValueError) as exc:
            return self._bad(str(exc))
        return web.json_response(self.config())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [fault.as_dict() for fault in self._faults]})

    async def _post_fault(self, request: web.Request) -> web.Response:
        payload = await self._json(request)
        known = {"to", "status", "code", "times", "message", "retry_after_s"}
        if unknown := set(payload) - known:
            return self._bad(f"unknown fault fields: {', '.join(sorted(unknown))}")
        try:
            fault = self.fail(**payload)
        except (TypeError, ValueError) as exc:
            return self._bad(str(exc))
        return web.json_response(fault.as_dict(), status=201)

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"faults": []})

    async def _number(self, request: web.Request) -> str | None:
        number = (await self._json(request)).get("number")
        return number if isinstance(number, str) and number else None

    async def _post_opt_out(self, request: web.Request) -> web.Response:
        if (number := await self._number(request)) is None:
            return self._bad('give {"number": "+86..."}')
        self.opt_out(number)
        return web.json_response({"opted_out": len(self._opted_out)})

    async def _post_opt_in(self, request: web.Request) -> web.Response:
        if (number := await self._number(request)) is None:
            return self._bad('give {"number": "+86..."}')
        self.opt_in(number)
        return web.json_response({"opted_out": len(self._opted_out)})

    async def _get_messages(self, request: web.Request) -> web.Response:
        try:
            offset = int(request.query.get("offset", 0))
            limit = int(request.query["limit"]) if "limit" in request.query else None
        except ValueError:
            return self._bad("offset and limit must be integers")
        to = request.query.get("to")
        chosen = self.messages if to is None else [m for m in self.messages if m.to == to]
        end = None if limit is None else offset + limit
        page = [m.as_dict() for m in chosen[offset:end]]
        return web.json_response({"total": len(chosen), "messages": page})

    async def _delete_messages(self, request: web.Request) -> web.Response:
        self.clear_messages()
        return web.json_response({"total": 0, "messages": []})

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _post_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.config())


# --- running it alone ---------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    server = LocalTwilio(args.account_sid, args.auth_token, port=args.port)
    server.configure(latency_ms=args.latency_ms, delivery=args.delivery, callback_delay_ms=args.callback_delay_ms)
    await serve(server)  # prints the URL first: a parent process reads it


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local Twilio-compatible Messages API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8181, help="0 picks a free port")
    parser.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID"))
    parser.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN"))
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--delivery", choices=DELIVERY_OUTCOMES, default="delivered")
    parser.add_argument("--callback-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    if not args.account_sid or not args.auth_token:
        parser.error("--account-sid and --auth-token are required (or TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
