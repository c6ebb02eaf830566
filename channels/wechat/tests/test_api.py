"""Our WeChat API client against the local WeChat server (providers.wechat_api), over real HTTP on
127.0.0.1, with the token cache in both state backends: the in-memory one and real Redis.

The send outcomes are one table (SEND_CASES) of the shared channel harness's OutgoingCase rows, run
by channels.harness.run_outgoing on both backends; the tests after it cover the token cache, menus,
logging and the Sender contract."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from channels.base import Outgoing, Sender, SendError, SendResult
from channels.harness import ANY, OutgoingCase, run_outgoing
from channels.wechat.api import AccessTokens, WeChatApi, WeChatSender, mask
from gateway.state import StateStore, create_state
from providers.wechat_api import LocalWeChat

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "local-test-secret-0002"
ALICE = "oAlice0000000000000000000001"  # inside the 48-hour window
BOB = "oBob000000000000000000000002"  # a follower who last wrote days ago
CAROL = "oCarol000000000000000000003"  # unfollowed the account
ROOT = Path(__file__).resolve().parents[3]


class Backend:
    """The shared state of one test, under a fresh app id so tests never see each other's tokens.
    another_process() gives the view of a second worker: a second Redis connection, or (in-memory,
    where only one process exists) the same store."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.app_id = f"wxtest{uuid.uuid4().hex[:12]}"
        self._states: list[StateStore] = []
        self.state = self.another_process() if kind == "redis" else self._keep(create_state(None))

    def _keep(self, state: StateStore) -> StateStore:
        self._states.append(state)
        return state

    def another_process(self) -> StateStore:
        return self._keep(create_state(REDIS_URL)) if self.kind == "redis" else self.state

    async def close(self) -> None:
        for key in (f"wechat:token:{self.app_id}", f"wechat:token-lock:{self.app_id}"):
            await self.state.release(key)
        for state in self._states:
            await state.close()


@pytest.fixture(params=["memory", "redis"])
async def backend(request) -> AsyncIterator[Backend]:
    backend = Backend(request.param)
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
async def server(backend) -> AsyncIterator[LocalWeChat]:
    async with LocalWeChat(backend.app_id, SECRET, templates=["tpl-bill-due"]) as running:
        running.outside_window(BOB)
        running.unsubscribed(CAROL)
        yield running


@pytest.fixture
async def make_api(backend, server) -> AsyncIterator[Callable[..., WeChatApi]]:
    made: list[WeChatApi] = []

    def make(state: StateStore | None = None, **options: Any) -> WeChatApi:
        options.setdefault("api_base", server.url)
        api = WeChatApi(backend.app_id, options.pop("secret", SECRET), state or backend.state, **options)
        made.append(api)
        return api

    yield make
    for api in made:
        await api.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch_elsewhere(http: aiohttp.ClientSession, server: LocalWeChat) -> str:
    """A token fetched behind our back (a second refresher): it invalidates the one we cached."""
    params = {"grant_type": "client_credential", "appid": server.app_id, "secret": SECRET}
    async with http.get(f"{server.url}/cgi-bin/token", params=params) as response:
        return (await response.json())["access_token"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the send-outcome table ------------------------------------------------------------------------


def text_to(openid: str, text: str = "12路约3分钟到站") -> Outgoing:
    return Outgoing(channel="wechat", to=openid, text=text, ref="message:1")


def template_to(openid: str, template_id: str = "tpl-bill-due", data: dict[str, Any] | None = None) -> Outgoing:
    data = {"amount": {"value": "¥35.20"}, "due": {"value": "2026-12-01"}} if data is None else data
    template = {"template_id": template_id, "data": data, "url": "https://example.gov.cn/bills"}
    return Outgoing(channel="wechat", to=openid, text="您的水费账单", ref="recipient:7", template=template)


def send_case(
    name: str,
    message: Outgoing,
    error: str | None = None,
    code: str | None = None,
    *,
    faults: tuple[dict[str, Any], ...] = (),
    condition: str | None = None,
    delivered: int = 1,
    token_requests: int = 1,
    timeout_s: float = 5.0,
) -> OutgoingCase:
    """One outgoing message, a provider-side condition, and what the sender must report.

    condition: "token_expired" / "token_rotated" (a token is cached first, then WeChat expires it or
    a second refresher replaces it), "down" (nothing listens at the API base), or None.
    faults: queued on the provider before sending (providers.wechat_api.Fault fields).
    error: the SendError kind expected, or None for a SendResult; code: its code, ANY = not checked.
    delivered: messages WeChat accepted (0 or 1: this message, as sent).
    token_requests: GET /cgi-bin/token calls the provider saw, including a rotation's own."""

    async def arrange(server: LocalWeChat) -> None:
        if condition == "token_expired":
            server.expire_token()
        elif condition == "token_rotated":
            async with aiohttp.ClientSession() as http:
                await fetch_elsewhere(http, server)
        for fault in faults:
            server.fail(**fault)

    def check(server: LocalWeChat, outcome: SendResult | SendError) -> None:
        assert server.token_requests == token_requests, f"{name}: {server.token_requests} token requests"
        if isinstance(outcome, SendResult) and not message.template:
            # The customer-service API returns no id: the sender's own must still be recognisable.
            assert outcome.provider_id.startswith("wechat-"), f"{name}: provider id {outcome.provider_id!r}"

    if message.template:
        accepted = {"kind": "template", "touser": message.to, "template_id": message.template["template_id"]}
    else:
        accepted = {"kind": "custom", "touser": message.to, "text": message.text}
    options: dict[str, Any] = {"timeout_s": timeout_s}
    if condition in ("token_expired", "token_rotated"):
        options["cached_token"] = True
    return OutgoingCase(
        name,
        message,
        arrange,
        error,
        code,
        status="sent",
        provider_id_field="msgid" if message.template else None,  # a template's id is WeChat's msgid
        sent=[accepted] * delivered,
        options=options,
        down=condition == "down",
        check=check,
    )


SEND_CASES = [
    send_case("text delivered", text_to(ALICE)),
    send_case("template delivered", template_to(ALICE)),
    send_case("template with plain-string data", template_to(ALICE, data={"amount": "¥35.20"})),
    send_case("expired token 42001: one refresh, delivered once", text_to(ALICE), condition="token_expired", token_requests=2),
    send_case("rotated token 40001: one refresh, delivered once", text_to(ALICE), condition="token_rotated", token_requests=3),
    send_case("40001 answered once: one refresh", template_to(ALICE), faults=({"path": "template", "errcode": 40001},), token_requests=2),
    send_case("token rejected twice: retry later", text_to(ALICE), "retry", "42001", faults=({"path": "custom", "errcode": 42001, "times": 2},), delivered=0, token_requests=2),
    send_case("outside the 48-hour window", text_to(BOB), "window_closed", "45015", delivered=0),
    send_case("template outside the window", template_to(BOB)),
    send_case("unfollowed: text", text_to(CAROL), "opted_out", "43004", delivered=0),
    send_case("unfollowed: template", template_to(CAROL), "opted_out", "43004", delivered=0),
    send_case("invalid openid", text_to("not an openid!"), "permanent", "40003", delivered=0),
    send_case("daily quota 45009", text_to(ALICE), "retry", "45009", faults=({"path": "custom", "errcode": 45009},), delivered=0),
    send_case("system busy -1", template_to(ALICE), "retry", "-1", faults=({"path": "template", "errcode": -1},), delivered=0),
    send_case("HTTP 500", text_to(ALICE), "retry", "http_500", faults=({"path": "custom", "errcode": -1, "http_status": 500},), delivered=0),
    send_case("token endpoint over quota", text_to(ALICE), "retry", "45009", faults=({"path": "token", "errcode": 45009},), delivered=0),
    send_case("unknown template", template_to(ALICE, "tpl-nope"), "permanent", "40037", delivered=0),
    send_case("other errcode", text_to(ALICE), "permanent", "48001", faults=({"path": "custom", "errcode": 48001},), delivered=0),
    send_case("timeout", text_to(ALICE), "retry", ANY, faults=({"path": "custom", "errcode": -1, "latency_ms": 3000},), delivered=0, timeout_s=0.3),
    send_case("server down", text_to(ALICE), "retry", ANY, condition="down", delivered=0, token_requests=0),
    send_case("template without an id", template_to(ALICE, ""), "permanent", ANY, delivered=0, token_requests=0),
]  # fmt: skip


@pytest.mark.parametrize("case", SEND_CASES, ids=lambda case: case.name)
async def test_send_outcomes(case: OutgoingCase, backend, server, make_api, caplog):
    async def make_sender(url: str, timeout_s: float, cached_token: bool = False) -> Sender:
        api = make_api(api_base=url, timeout_s=timeout_s)
        if cached_token:  # the token a condition then expires or rotates
            await api.tokens.get()
        return WeChatSender(api)

    def recorded(server: LocalWeChat) -> list[dict[str, Any]]:
        return [m.as_dict() for m in server.messages]

    await run_outgoing(case, make_sender, server, recorded, caplog, lambda: [SECRET, *server.issued_tokens])


# --- the shared token ------------------------------------------------------------------------------


async def test_concurrent_sends_with_no_cached_token_fetch_exactly_one(backend, server, make_api):
    server.fail(None, path="token", latency_ms=150)  # a slow token endpoint widens the race
    first, second = make_api(), make_api(backend.another_process())
    texts = [f"第{i}条" for i in range(20)]
    await asyncio.gather(*[(first if i % 2 else second).send_text(ALICE, t) for i, t in enumerate(texts)])
    assert server.token_requests == 1
    assert sorted(m.text for m in server.messages) == sorted(texts)


async def test_a_rotated_token_seen_by_many_callers_is_refreshed_once(backend, server, make_api, http):
    first, second = make_api(), make_api(backend.another_process())
    await first.send_text(ALICE, "warm-up")
    await fetch_elsewhere(http, server)  # every cached copy is now answered with 40001
    await asyncio.gather(*[(first if i % 2 else second).send_text(ALICE, f"{i}") for i in range(10)])
    assert server.token_requests == 3  # ours, the rotation, and exactly one refresh
    assert len(server.messages) == 11


async def test_invalidate_drops_the_cached_token_only_if_it_is_still_the_bad_one(backend, server, http):
    tokens = AccessTokens(backend.app_id, SECRET, backend.state, http, server.url)
    first = await tokens.get()
    await tokens.invalidate("some-older-token")
    assert await tokens.get() == first and server.token_requests == 1
    await tokens.invalidate(first)
    second = await tokens.get()
    assert second != first and server.token_requests == 2
    await asyncio.gather(*[tokens.invalidate(first) for _ in range(5)])  # late reports of the old token
    assert await tokens.get() == second and server.token_requests == 2


async def test_waiters_reread_the_cache_while_another_process_refreshes(backend, server, http):
    tokens = AccessTokens(backend.app_id, SECRET, backend.state, http, server.url, wait_s=2)
    other = backend.another_process()
    assert await other.claim(tokens.lock_key, 30)  # another process is refreshing
    waiter = asyncio.create_task(tokens.get())
    await asyncio.sleep(0.2)
    assert not waiter.done()
    await other.set_json(tokens.cache_key, {"token": "stored-by-the-other", "expires_at": time.time() + 60}, 60)
    assert await asyncio.wait_for(waiter, 2) == "stored-by-the-other"
    assert server.token_requests == 0
    await other.release(tokens.lock_key)


async def test_waiting_for_a_stuck_refresher_is_bounded(backend, server, http):
    tokens = AccessTokens(backend.app_id, SECRET, backend.state, http, server.url, wait_s=0.4)
    assert await backend.another_process().claim(tokens.lock_key, 30)
    started = time.monotonic()
    with pytest.raises(SendError) as raised:
        await tokens.get()
    assert raised.value.kind == "retry" and "refresh lock busy" in raised.value.reason
    assert time.monotonic() - started < 1.5 and server.token_requests == 0
    await backend.state.release(tokens.lock_key)
    assert await tokens.get() and server.token_requests == 1  # the lock is free again: refresh works


async def test_cached_tokens_expire_before_wechat_expires_them(backend, http):
    async with LocalWeChat(backend.app_id, SECRET, token_ttl_s=2) as server:
        tokens = AccessTokens(backend.app_id, SECRET, backend.state, http, server.url)
        first = await tokens.get()
        entry = await backend.state.get_json(tokens.cache_key)
        assert entry["expires_at"] - time.time() <= 1  # 2 s minus a margin of half its life
        await asyncio.sleep(1.2)
        assert await tokens.get() != first and server.token_requests == 2


@pytest.mark.parametrize(("app_id", "secret", "code"), [("wx-not-ours", SECRET, "40013"), (None, "wrong", "40125")])
async def test_wrong_credentials_are_permanent_and_cache_nothing(backend, server, http, app_id, secret, code):
    tokens = AccessTokens(app_id or backend.app_id, secret, backend.state, http, server.url)
    with pytest.raises(SendError) as raised:
        await tokens.get()
    assert (raised.value.kind, raised.value.code) == ("permanent", code)
    assert await backend.state.get_json(tokens.cache_key) is None


async def test_separate_processes_share_one_refresh_through_redis():
    """Three real processes, five callers each, start together against an empty cache."""
    app_id = f"wxtest{uuid.uuid4().hex[:12]}"
    async with LocalWeChat(app_id, SECRET) as server:
        server.fail(None, path="token", latency_ms=200)
        outputs, codes = await run_token_processes(server, app_id)
    assert codes == [0, 0, 0]
    assert {tuple(o) for o in outputs} == {("1", server.token)}
    assert server.token_requests == 1


async def run_token_processes(server: LocalWeChat, app_id: str) -> tuple[list[list[str]], list[int | None]]:
    script = (
        "import asyncio, sys, time, aiohttp\n"
        "from channels.wechat.api import AccessTokens\n"
        "from gateway.state import create_state\n"
        "async def main(url, app_id, secret, start):\n"
        f"    state = create_state({REDIS_URL!r})\n"
        "    async with aiohttp.ClientSession() as http:\n"
        "        tokens = AccessTokens(app_id, secret, state, http, url)\n"
        "        await asyncio.sleep(max(0.0, start - time.time()))\n"
        "        got = await asyncio.gather(*[tokens.get() for _ in range(5)])\n"
        "    await state.close()\n"
        "    print(len(set(got)), got[0])\n"
        "asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))\n"
    )
    start = str(time.time() + 2.0)  # after every interpreter has started
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, server.url, app_id, SECRET, start, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    try:
        outputs = [(await asyncio.wait_for(p.communicate(), 30))[0].decode().split() for p in processes]
    finally:
        state = create_state(REDIS_URL)
        await state.release(f"wechat:token:{app_id}")
        await state.close()
    return outputs, [p.returncode for p in processes]


# --- menu, logging, the Sender contract ------------------------------------------------------------

MENU = {
    "button": [
        {"type": "click", "name": "公交查询", "key": "BUS"},
        {
            "name": "办事",
            "sub_button": [{"type": "view", "name": "水电气暖缴费", "url": "https://example.gov.cn/bills"}],
        },
    ]
}


async def test_menu_create(backend, server, make_api):
    api = make_api()
    await api.create_menu(MENU)
    assert server.menu == MENU
    invalid: list[tuple[dict[str, Any], str]] = [
        ({"button": [{"type": "click", "name": "克拉玛依市民服务", "key": "K"}]}, "40018"),  # 24 bytes
        ({"button": []}, "40016"),
        ({"button": [{"type": "click", "name": "查询", "key": "K" * 129}]}, "40019"),
    ]
    for menu, code in invalid:
        with pytest.raises(SendError) as raised:
            await api.create_menu(menu)
        assert (raised.value.kind, raised.value.code) == ("permanent", code)
    assert server.menu == MENU  # a refused menu leaves the old one in place
    server.fail(-1, path="menu")
    with pytest.raises(SendError) as raised:
        await api.create_menu(MENU)
    assert raised.value.kind == "retry"


async def test_no_openid_token_or_secret_reaches_logs_or_errors(backend, server, make_api, http, caplog):
    caplog.set_level(logging.DEBUG)
    api = make_api(timeout_s=0.3)
    errors: list[SendError] = []

    async def attempt(call: Awaitable[Any]) -> None:
        try:
            await call
        except SendError as exc:
            errors.append(exc)

    await attempt(api.send_text(ALICE, "您好"))
    await fetch_elsewhere(http, server)
    await attempt(api.send_template(ALICE, "tpl-bill-due", {"amount": "1"}))  # 40001 → refresh → sent
    await attempt(api.send_text(BOB, "窗口已关闭"))
    await attempt(api.send_text(CAROL, "已退订"))
    server.fail(-1, path="custom", http_status=500)
    await attempt(api.send_text(ALICE, "500"))
    server.fail(-1, path="custom", latency_ms=2000)
    await attempt(api.send_text(ALICE, "timeout"))
    await attempt(make_api(create_state(None), secret="a-wrong-secret-0003").send_text(ALICE, "x"))  # empty cache
    await attempt(make_api(api_base=f"http://127.0.0.1:{free_port()}").send_text(ALICE, "down"))

    assert len(errors) == 6 and len(server.issued_tokens) == 3
    said = caplog.text + "".join(f"{e!s} {e!r} {e.reason}" for e in errors) + repr(api) + repr(api.tokens)
    for secret in (SECRET, "a-wrong-secret-0003", ALICE, BOB, CAROL, *server.issued_tokens):
        assert secret not in said
    assert mask(ALICE) in caplog.text  # the masked form is what lets one follow a citizen's messages


async def test_the_sender_round_trips_a_queued_template_message(backend, server, make_api):
    message = Outgoing.from_fields(template_to(BOB).as_fields())  # as a worker reads it from a stream
    sender = WeChatSender(make_api())
    assert sender.channel == "wechat"
    result = await sender.send(message)
    assert result.provider_id == str(server.messages[0].msgid)
    assert server.messages[0].url == "https://example.gov.cn/bills"
    assert server.messages[0].data == message.template["data"]
    await sender.close()
