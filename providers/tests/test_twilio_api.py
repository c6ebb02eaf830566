"""The local Twilio Messages API on its own: its contract (auth, validation, the Message resource,
segments), its signed status callbacks as an independent check (twilio's RequestValidator) sees them,
and its knobs in process and over the /_control/ endpoints. Real servers on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from providers.twilio_api import LocalTwilio

SID = "AC" + "a1" * 16
TOKEN = "local-auth-token"
FROM = "+15005550006"
TO = "+8613912345678"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"


@pytest.fixture
async def twilio() -> AsyncIterator[LocalTwilio]:
    async with LocalTwilio(SID, TOKEN) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


class Receiver:
    """The gateway's side of status callbacks: records each one with what validating it needs."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.arrived = asyncio.Condition()
        self.delay_s = 0.0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        async with self.arrived:
            self.calls.append(
                {"url": str(request.url), "params": params, "signature": request.headers.get("X-Twilio-Signature")}
            )
            self.arrived.notify_all()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.Response(text="")

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.calls) >= count)
        return self.calls

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/twilio/status", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/twilio/status?tenant=karamay"  # a query string is signed too

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


async def create(
    http: aiohttp.ClientSession,
    server: LocalTwilio,
    auth: dict[str, str] | None = None,
    path: str = MESSAGES,
    **form: str,
) -> tuple[int, dict[str, Any], Mapping[str, str]]:
    async with http.post(server.url + path, data=form, headers=auth or basic(SID, TOKEN)) as response:
        return response.status, await response.json(), response.headers


def message(**overrides: str) -> dict[str, str]:
    form = {"To": TO, "From": FROM, "Body": "【克拉玛依市民服务】12路约3分钟到站"}
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


# --- the Messages API ---------------------------------------------------------------------------


async def test_a_valid_message_is_accepted_as_a_message_resource(twilio, http):
    status, body, _ = await create(http, twilio, **message(StatusCallback="http://127.0.0.1:9/cb"))
    assert status == 201
    assert re.fullmatch(r"SM[0-9a-f]{32}", body["sid"])
    assert body["account_sid"] == SID and body["to"] == TO and body["from"] == FROM
    assert body["body"] == "【克拉玛依市民服务】12路约3分钟到站"
    assert body["status"] == "queued" and body["num_segments"] == "1" and body["direction"] == "outbound-api"
    assert body["uri"] == f"/2010-04-01/Accounts/{SID}/Messages/{body['sid']}.json"
    assert abs(parsedate_to_datetime(body["date_created"]).timestamp() - time.time()) < 5
    [record] = twilio.messages
    assert record.as_dict() == {
        "sid": body["sid"],
        "to": TO,
        "from": FROM,
        "body": body["body"],
        "segments": 1,
        "status_callback": "http://127.0.0.1:9/cb",
        "messaging_service_sid": None,
    }


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("字" * 70, 1),  # 210 UTF-8 bytes, still one UCS-2 segment
        ("字" * 71, 2),
        ("字" * 134, 2),  # 67 per part once concatenated
        ("字" * 135, 3),
        ("😀" * 35, 1),  # beyond U+FFFF: two units each
        ("😀" * 36, 2),
    ],
)
async def test_segments_are_ucs2_segments(twilio, http, body, segments):
    status, resource, _ = await create(http, twilio, **message(Body=body))
    assert status == 201 and resource["num_segments"] == str(segments)
    assert twilio.messages[-1].segments == segments and twilio.stats()["segments"] == segments


async def test_a_messaging_service_may_stand_in_for_from(twilio, http):
    service = "MG" + "0" * 32
    status, body, _ = await create(http, twilio, To=TO, MessagingServiceSid=service, Body="您好")
    assert status == 201 and body["messaging_service_sid"] == service and body["from"] is None


@pytest.mark.parametrize(
    ("form", "code"),
    [
        (message(To=None), 21604),
        (message(To=""), 21604),
        (message(Body=None), 21602),
        (message(From=None), 21603),
        (message(To="13912345678"), 21211),  # no +
        (message(To="+8613912x45678"), 21211),
        (message(To="+1234567"), 21211),  # 7 digits
        (message(To="+1234567890123456"), 21211),  # 16 digits
        (message(To="+0861391234567"), 21211),  # no country code starts with 0
        (message(Body="字" * 1601), 21617),
        (message(StatusCallback="ftp://example/cb"), 21609),
    ],
)
async def test_invalid_requests_get_twilio_errors(twilio, http, form, code):
    status, body, _ = await create(http, twilio, **form)
    assert status == 400
    assert body["code"] == code and body["status"] == 400 and body["message"]
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert twilio.messages == [] and twilio.stats()["rejected"] == {str(code): 1}


async def test_boundary_numbers_are_valid(twilio, http):
    for to in ("+12345678", "+123456789012345"):  # 8 and 15 digits
        status, _, _ = await create(http, twilio, **message(To=to))
        assert status == 201


@pytest.mark.parametrize(
    "headers",
    [
        {},
        basic(SID, "wrong-token"),
        basic("AC" + "0" * 32, TOKEN),
        basic(SID, ""),
        {"Authorization": "Basic not-base64!"},
        {"Authorization": f"Bearer {TOKEN}"},
    ],
    ids=["none", "wrong-token", "wrong-sid", "empty-token", "garbled", "not-basic"],
)
async def test_requests_without_the_right_credentials_get_401(twilio, http, headers):
    async with http.post(twilio.url + MESSAGES, data=message(), headers=headers) as response:
        body = await response.json()
        assert response.status == 401 and "Basic" in response.headers["WWW-Authenticate"]
    assert body == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert twilio.messages == []


async def test_another_accounts_path_is_not_found(twilio, http):
    other = "AC" + "b2" * 16
    status, body, _ = await create(http, twilio, path=f"/2010-04-01/Accounts/{other}/Messages.json", **message())
    assert status == 404 and body["code"] == 20404


# --- faults, opt-outs, latency ------------------------------------------------------------------


async def test_faults_are_taken_in_order_and_only_for_their_number(twilio, http):
    other = "+8613800000009"
    twilio.fail(to=TO, status=429, times=2, retry_after_s=7)
    twilio.fail(to="*", status=500)
    assert (await create(http, twilio, **message(To=other)))[:2] == (
        500,
        {
            "code": 20500,
            "message": "An internal server error has occurred",
            "more_info": "https://www.twilio.com/docs/errors/20500",
            "status": 500,
        },
    )
    first = await create(http, twilio, **message())
    second = await create(http, twilio, **message())
    assert [first[0], second[0]] == [429, 429] and first[1]["code"] == 20429 and first[2]["Retry-After"] == "7"
    assert (await create(http, twilio, **message()))[0] == 201  # the faults are used up
    assert [m.to for m in twilio.messages] == [TO]
    assert twilio.stats()["faults_applied"] == 3


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ({"status": 503}, 503, 20503),
        ({"code": 21211}, 400, 21211),
        ({"code": 21610}, 400, 21610),
        ({"code": 20429}, 429, 20429),
        ({"status": 400, "code": 21614}, 400, 21614),
    ],
)
async def test_a_fault_may_be_named_by_status_or_code(twilio, http, fault, status, code):
    twilio.fail(**fault)
    answer = await create(http, twilio, **message())
    assert (answer[0], answer[1]["code"]) == (status, code)


def test_nonsense_faults_are_refused():
    server = LocalTwilio(SID, TOKEN)
    for bad in ({}, {"status": 302}, {"status": 500, "times": 0}, {"to": "", "status": 500}):
        with pytest.raises(ValueError):
            server.fail(**bad)


async def test_opted_out_numbers_always_get_21610(twilio, http):
    twilio.opt_out(TO)
    for _ in range(2):
        status, body, _ = await create(http, twilio, **message())
        assert status == 400 and body["code"] == 21610
        assert body["message"] == "Attempt to send to unsubscribed recipient"
    assert (await create(http, twilio, **message(To="+8613800000009")))[0] == 201
    twilio.opt_in(TO)
    assert (await create(http, twilio, **message()))[0] == 201


async def test_latency_slows_each_create(twilio, http):
    twilio.configure(latency_ms=200)
    started = time.monotonic()
    await asyncio.gather(*(create(http, twilio, **message()) for _ in range(3)))
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 1.0  # each waits, none waits for the others


# --- status callbacks ---------------------------------------------------------------------------


def assert_signed(call: dict[str, Any]) -> None:
    assert RequestValidator(TOKEN).validate(call["url"], call["params"], call["signature"])
    assert not RequestValidator("another-token").validate(call["url"], call["params"], call["signature"])


async def test_status_callbacks_report_sent_then_delivered_signed(twilio, http, receiver):
    _, body, _ = await create(http, twilio, **message(StatusCallback=receiver.url))
    calls = await receiver.wait_for(2)
    assert [c["params"]["MessageStatus"] for c in calls] == ["sent", "delivered"]
    for call in calls:
        assert_signed(call)
        params = call["params"]
        assert params["MessageSid"] == params["SmsSid"] == body["sid"]
        assert params["AccountSid"] == SID and params["From"] == FROM and params["To"] == TO
        assert "ErrorCode" not in params
    await twilio.callbacks_done()
    assert twilio.stats()["callbacks"] == {"pending": 0, "sent": 2, "failed": 0}


@pytest.mark.parametrize(
    ("configure", "statuses", "error_code"),
    [
        ({"delivery": "undelivered"}, ["sent", "undelivered"], "30003"),
        ({"delivery": "undelivered", "error_code": 30005}, ["sent", "undelivered"], "30005"),
        ({"delivery": "failed"}, ["failed"], "30008"),  # a failed message never left: no "sent"
    ],
)
async def test_configured_delivery_outcomes(twilio, http, receiver, configure, statuses, error_code):
    twilio.configure(**configure)
    await create(http, twilio, **message(StatusCallback=receiver.url))
    await twilio.callbacks_done()
    assert [c["params"]["MessageStatus"] for c in receiver.calls] == statuses
    assert receiver.calls[-1]["params"]["ErrorCode"] == error_code
    for call in receiver.calls:
        assert_signed(call)


async def test_a_delivery_fault_hits_one_number_only(twilio, http, receiver):
    other = "+8613800000009"
    twilio.fail(to=TO, code=30003)
    for to in (other, TO):
        status, _, _ = await create(http, twilio, **message(To=to, StatusCallback=receiver.url))
        assert status == 201
    await twilio.callbacks_done()
    finals = {c["params"]["To"]: c["params"] for c in receiver.calls if c["params"]["MessageStatus"] != "sent"}
    assert finals[other]["MessageStatus"] == "delivered"
    assert finals[TO]["MessageStatus"] == "undelivered" and finals[TO]["ErrorCode"] == "30003"


async def test_callbacks_never_hold_up_creates(twilio, http, receiver):
    twilio.configure(callback_delay_ms=300)
    receiver.delay_s = 0.5  # a slow receiver too
    started = time.monotonic()
    status, _, _ = await create(http, twilio, **message(StatusCallback=receiver.url))
    assert status == 201 and time.monotonic() - started < 0.25
    assert receiver.calls == []  # not yet: the delay holds them back
    calls = await receiver.wait_for(2)
    assert time.monotonic() - started >= 0.3 and [c["params"]["MessageStatus"] for c in calls] == ["sent", "delivered"]


async def test_failed_callbacks_are_counted_and_logged_without_numbers(twilio, http, caplog):
    caplog.set_level(logging.DEBUG)
    dead = f"http://127.0.0.1:{closed_port()}/status"
    for _ in range(3):
        assert (await create(http, twilio, **message(StatusCallback=dead)))[0] == 201
    await twilio.callbacks_done()
    assert twilio.stats()["callbacks"]["failed"] == 6  # sent + delivered for each
    assert any("status callback" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if TO in r.getMessage() or TO[1:] in r.getMessage()]


async def test_many_callbacks_need_no_task_each(twilio, http, receiver):
    twilio.configure(callback_delay_ms=200)
    tasks_before = len(asyncio.all_tasks())
    for _ in range(100):  # one after another: one keep-alive connection, so one server-side handler task
        await create(http, twilio, **message(StatusCallback=receiver.url))
    assert len(asyncio.all_tasks()) - tasks_before < 20  # a fixed worker pool, not one task per message
    assert not hasattr(twilio.messages[0], "__dict__")  # slotted records: 250,000 of them stay small
    await twilio.callbacks_done()
    assert len(receiver.calls) == 200


# --- control endpoints over HTTP ----------------------------------------------------------------


async def control(
    http: aiohttp.ClientSession, server: LocalTwilio, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, f"{server.url}/_control/{path}", **kwargs) as response:
        return response.status, await response.json()


async def test_control_endpoints_drive_the_server_from_another_process(twilio, http, receiver):
    status, fault = await control(http, twilio, "POST", "faults", json={"to": "*", "status": 503, "times": 1})
    assert status == 201 and fault["code"] == 20503
    assert (await control(http, twilio, "GET", "faults"))[1]["faults"][0]["status"] == 503
    assert (await create(http, twilio, **message()))[0] == 503

    assert (await control(http, twilio, "POST", "opt_out", json={"number": TO}))[0] == 200
    assert (await create(http, twilio, **message()))[1]["code"] == 21610
    await control(http, twilio, "POST", "opt_in", json={"number": TO})

    status, config = await control(
        http, twilio, "POST", "config", json={"latency_ms": 10, "delivery": "undelivered", "callback_delay_ms": 0}
    )
    assert status == 200 and config["latency_ms"] == 10 and config["delivery"] == "undelivered"
    _, sent, _ = await create(http, twilio, **message(Body="第二条", StatusCallback=receiver.url))
    await receiver.wait_for(2)
    assert receiver.calls[-1]["params"]["MessageStatus"] == "undelivered"

    status, listing = await control(http, twilio, "GET", "messages")
    assert listing == {
        "total": 1,
        "messages": [
            {
                "sid": sent["sid"],
                "to": TO,
                "from": FROM,
                "body": "第二条",
                "segments": 1,
                "status_callback": receiver.url,
                "messaging_service_sid": None,
            }
        ],
    }
    status, stats = await control(http, twilio, "GET", "stats")
    assert stats["requests"] == 3 and stats["accepted"] == 1 and stats["rejected"] == {"20503": 1, "21610": 1}

    assert (await control(http, twilio, "DELETE", "messages"))[1]["total"] == 0
    assert twilio.messages == [] and (await control(http, twilio, "GET", "stats"))[1]["requests"] == 0

    twilio.fail(status=500, times=5)
    twilio.opt_out(TO)
    status, config = await control(http, twilio, "POST", "reset")
    assert config == {
        "latency_ms": 0.0,
        "delivery": "delivered",
        "error_code": None,
        "callback_delay_ms": 0.0,
        "faults": [],
        "opted_out": [],
    }
    assert (await control(http, twilio, "DELETE", "faults"))[0] == 200


async def test_message_listing_pages_and_filters(twilio, http):
    for i in range(5):
        await create(http, twilio, **message(To=f"+861380000000{i % 2}", Body=f"第{i}条"))
    _, page = await control(http, twilio, "GET", "messages", params={"offset": "1", "limit": "2"})
    assert page["total"] == 5 and [m["body"] for m in page["messages"]] == ["第1条", "第2条"]
    _, only = await control(http, twilio, "GET", "messages", params={"to": "+8613800000001"})
    assert only["total"] == 2 and {m["to"] for m in only["messages"]} == {"+8613800000001"}


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("faults", {"status": 302}),
        ("faults", {"to": "*", "status": 500, "colour": "red"}),
        ("config", {"delivery": "lost"}),
        ("config", {"latency_ms": -1}),
        ("config", {"speed": 1}),
        ("opt_out", {}),
        ("opt_out", [TO]),
    ],
)
async def test_control_endpoints_refuse_bad_input(twilio, http, path, payload):
    status, body = await control(http, twilio, "POST", path, json=payload)
    assert status == 400 and body["error"]


async def test_control_endpoints_refuse_non_json(twilio, http):
    status, body = await control(http, twilio, "POST", "config", data="latency_ms=5")
    assert status == 400 and body["error"]


# --- running alone ------------------------------------------------------------------------------


async def test_runs_as_a_module_and_prints_its_url(http):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "providers.twilio_api", "--port", "0", "--account-sid", SID, "--auth-token", TOKEN,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            url = (await process.stdout.readline()).decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        async with http.post(url + MESSAGES, data=message(), headers=basic(SID, TOKEN)) as response:
            assert response.status == 201
        async with http.get(url + "/_control/stats") as response:
            assert (await response.json())["accepted"] == 1
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
