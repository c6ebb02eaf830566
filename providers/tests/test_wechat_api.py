"""The local WeChat API server keeps the documented contract: checked with raw HTTP, through its
control endpoints, as a separate process, and by wechatpy (an independent client implementation)."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from providers.wechat_api import LocalWeChat

APP_ID, SECRET = "wx5f1c0ffee0000001", "local-test-secret-0001"
ALICE, BOB = "oAlice0000000000000000000001", "oBob000000000000000000000002"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def server() -> AsyncIterator[LocalWeChat]:
    async with LocalWeChat(APP_ID, SECRET, templates=["tpl-bill-due"]) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get_token(http: aiohttp.ClientSession, url: str, appid: str = APP_ID, secret: str = SECRET) -> dict:
    params = {"grant_type": "client_credential", "appid": appid, "secret": secret}
    async with http.get(f"{url}/cgi-bin/token", params=params) as response:
        return await response.json()


async def post(http: aiohttp.ClientSession, url: str, path: str, token: str | None, body: Any) -> tuple[int, dict]:
    params = {"access_token": token} if token else {}
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    async with http.post(f"{url}{path}", params=params, data=data) as response:
        return response.status, await response.json(content_type=None)


def text(openid: str, content: str = "您好") -> dict:
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}


def template(openid: str, template_id: str = "tpl-bill-due") -> dict:
    return {"touser": openid, "template_id": template_id, "data": {"amount": {"value": "¥35.20"}}}


# --- tokens ----------------------------------------------------------------------------------------


async def test_token_is_issued_counted_and_lasts_7200_s(server, http):
    reply = await get_token(http, server.url)
    assert reply["expires_in"] == 7200 and reply["access_token"] == server.token
    assert server.token_requests == 1


@pytest.mark.parametrize(
    ("appid", "secret", "errcode"),
    [("wx-someone-else", SECRET, 40013), (APP_ID, "wrong-secret", 40125), ("", SECRET, 41002), (APP_ID, "", 41004)],
)
async def test_wrong_credentials_get_no_token(server, http, appid, secret, errcode):
    reply = await get_token(http, server.url, appid, secret)
    assert reply["errcode"] == errcode and "access_token" not in reply
    assert server.token_requests == 1 and server.token is None


async def test_a_new_token_invalidates_the_previous_one(server, http):
    first = (await get_token(http, server.url))["access_token"]
    second = (await get_token(http, server.url))["access_token"]
    assert first != second
    assert (await post(http, server.url, "/cgi-bin/message/custom/send", first, text(ALICE)))[1]["errcode"] == 40001
    assert (await post(http, server.url, "/cgi-bin/message/custom/send", second, text(ALICE)))[1]["errcode"] == 0


async def test_an_expired_token_answers_42001_until_a_new_one_is_fetched(server, http):
    token = (await get_token(http, server.url))["access_token"]
    server.expire_token()
    assert (await post(http, server.url, "/cgi-bin/message/custom/send", token, text(ALICE)))[1]["errcode"] == 42001
    token = (await get_token(http, server.url))["access_token"]
    assert (await post(http, server.url, "/cgi-bin/message/custom/send", token, text(ALICE)))[1]["errcode"] == 0


async def test_tokens_expire_after_their_ttl(http):
    async with LocalWeChat(APP_ID, SECRET, token_ttl_s=0) as server:
        token = (await get_token(http, server.url))["access_token"]
        _, reply = await post(http, server.url, "/cgi-bin/message/custom/send", token, text(ALICE))
        assert reply["errcode"] == 42001


# --- customer-service and template messages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "body", "errcode"),
    [
        ("delivered", text(ALICE, "12路约3分钟到站"), 0),
        ("outside the 48-hour window", text(BOB), 45015),
        ("unfollowed", text("oGone000000000000000000000003"), 43004),
        ("not an openid", text("not an openid!"), 40003),
        ("missing touser", {"msgtype": "text", "text": {"content": "x"}}, 40003),
        ("not text", {"touser": ALICE, "msgtype": "video", "video": {}}, 40008),
        ("empty content", text(ALICE, ""), 44004),
        ("no content", {"touser": ALICE, "msgtype": "text", "text": "x"}, 47001),
        ("empty body", b"", 44002),
        ("not JSON", b"{nope", 47001),
    ],
)
async def test_customer_service_messages(server, http, name, body, errcode):
    server.outside_window(BOB)
    server.unsubscribed("oGone000000000000000000000003")
    token = (await get_token(http, server.url))["access_token"]
    status, reply = await post(http, server.url, "/cgi-bin/message/custom/send", token, body)
    assert status == 200 and reply["errcode"] == errcode, name
    if errcode == 0:
        assert reply == {"errcode": 0, "errmsg": "ok"}
        assert [(m.kind, m.touser, m.text) for m in server.messages] == [("custom", ALICE, "12路约3分钟到站")]
    else:
        assert server.messages == []
        assert reply["errmsg"].split(" rid: ")[0]  # WeChat's shape: text plus a request id


async def test_missing_or_unknown_token_is_refused(server, http):
    await get_token(http, server.url)
    assert (await post(http, server.url, "/cgi-bin/message/custom/send", None, text(ALICE)))[1]["errcode"] == 41001
    assert (await post(http, server.url, "/cgi-bin/message/custom/send", "forged", text(ALICE)))[1]["errcode"] == 40001


async def test_template_messages_ignore_the_window_but_need_a_follower(server, http):
    server.outside_window(BOB)
    token = (await get_token(http, server.url))["access_token"]
    _, first = await post(http, server.url, "/cgi-bin/message/template/send", token, template(BOB))
    body = {**template(ALICE), "url": "https://example.gov.cn/bill"}
    _, second = await post(http, server.url, "/cgi-bin/message/template/send", token, body)
    assert first["errcode"] == 0 and first["errmsg"] == "ok" and second["msgid"] > first["msgid"]
    assert [(m.kind, m.touser, m.msgid, m.url) for m in server.messages] == [
        ("template", BOB, first["msgid"], None),
        ("template", ALICE, second["msgid"], "https://example.gov.cn/bill"),
    ]
    assert server.messages[0].data == {"amount": {"value": "¥35.20"}}

    server.unsubscribed(ALICE)
    cases = [(template(ALICE), 43004), (template(BOB, "tpl-unknown"), 40037), ({**template(BOB), "data": "x"}, 47001)]
    for body, errcode in cases:
        assert (await post(http, server.url, "/cgi-bin/message/template/send", token, body))[1]["errcode"] == errcode
    assert len(server.messages) == 2


async def test_any_template_id_is_accepted_when_none_are_configured(http):
    async with LocalWeChat(APP_ID, SECRET) as server:
        token = (await get_token(http, server.url))["access_token"]
        _, reply = await post(http, server.url, "/cgi-bin/message/template/send", token, template(ALICE, "anything"))
        assert reply["errcode"] == 0


# --- menu ------------------------------------------------------------------------------------------

VALID_MENU = {
    "button": [
        {"type": "click", "name": "公交查询", "key": "BUS"},
        {
            "name": "办事",
            "sub_button": [
                {"type": "view", "name": "预约挂号（克拉玛依市中心医院）", "url": "https://example.gov.cn/clinic"},
                {"type": "click", "name": "水电气暖缴费", "key": "BILLS"},
            ],
        },
        {"type": "location_select", "name": "附近", "key": "NEARBY"},
    ]
}


def menu_with(button: dict) -> dict:
    return {"button": [button]}


@pytest.mark.parametrize(
    ("name", "menu", "errcode"),
    [
        ("valid", VALID_MENU, 0),
        ("no buttons", {"button": []}, 40016),
        ("four buttons", {"button": [{"type": "click", "name": "a", "key": "k"}] * 4}, 40016),
        ("top name 18 bytes", menu_with({"type": "click", "name": "市民服务中心", "key": "K"}), 40018),
        ("top name 15 bytes", menu_with({"type": "click", "name": "市民服务站", "key": "K"}), 0),
        ("no name", menu_with({"type": "click", "key": "K"}), 40018),
        ("click without key", menu_with({"type": "click", "name": "a"}), 40019),
        ("key 129 bytes", menu_with({"type": "click", "name": "a", "key": "k" * 129}), 40019),
        ("view without url", menu_with({"type": "view", "name": "a"}), 40020),
        ("unknown type", menu_with({"type": "dance", "name": "a"}), 40017),
        (
            "six sub-buttons",
            menu_with({"name": "a", "sub_button": [{"type": "click", "name": "b", "key": "k"}] * 6}),
            40023,
        ),
        (
            "sub name 61 bytes",
            menu_with({"name": "a", "sub_button": [{"type": "click", "name": "b" * 61, "key": "k"}]}),
            40025,
        ),
        ("sub view without url", menu_with({"name": "a", "sub_button": [{"type": "view", "name": "b"}]}), 40027),
        (
            "sub key too long",
            menu_with({"name": "a", "sub_button": [{"type": "click", "name": "b", "key": "k" * 200}]}),
            40026,
        ),
        ("not a list", {"button": "x"}, 47001),
    ],
)
async def test_menu_create_is_validated_like_wechat(server, http, name, menu, errcode):
    token = (await get_token(http, server.url))["access_token"]
    _, reply = await post(http, server.url, "/cgi-bin/menu/create", token, menu)
    assert reply["errcode"] == errcode, name
    assert server.menu == (menu if errcode == 0 else None)


async def test_the_stored_menu_can_be_read_back(server, http):
    token = (await get_token(http, server.url))["access_token"]
    async with http.get(f"{server.url}/cgi-bin/menu/get", params={"access_token": token}) as response:
        assert (await response.json())["errcode"] == 46003
    await post(http, server.url, "/cgi-bin/menu/create", token, VALID_MENU)
    async with http.get(f"{server.url}/cgi-bin/menu/get", params={"access_token": token}) as response:
        assert await response.json() == {"menu": VALID_MENU}
    async with http.get(f"{server.url}/cgi-bin/get_current_selfmenu_info", params={"access_token": token}) as response:
        info = await response.json()
    assert info["is_menu_open"] == 1
    assert info["selfmenu_info"]["button"][1]["sub_button"]["list"] == VALID_MENU["button"][1]["sub_button"]
    async with http.get(f"{server.url}/_control/menu") as response:
        assert await response.json() == {"menu": VALID_MENU}


# --- faults and latency -----------------------------------------------------------------------------


async def test_faults_apply_to_their_path_for_their_count(server, http):
    token = (await get_token(http, server.url))["access_token"]
    server.fail(45009, path="custom", times=2)
    server.fail(-1, path="template")
    send = "/cgi-bin/message/custom/send"
    assert [(await post(http, server.url, send, token, text(ALICE)))[1]["errcode"] for _ in range(3)] == [
        45009,
        45009,
        0,
    ]
    _, busy = await post(http, server.url, "/cgi-bin/message/template/send", token, template(ALICE))
    assert busy["errcode"] == -1 and busy["errmsg"].startswith("system error")
    assert len(server.faults) == 0 and len(server.messages) == 1


async def test_faults_can_be_http_errors_on_any_path_and_repeat_until_cleared(server, http):
    server.fail(-1, path="*", http_status=500, times=None)
    reply = await get_token(http, server.url)
    assert reply["errcode"] == -1 and server.token is None
    status, _ = await post(http, server.url, "/cgi-bin/menu/create", "x", VALID_MENU)
    assert status == 500
    server.faults.clear()
    assert "access_token" in await get_token(http, server.url)


async def test_latency_delays_answers(server, http):
    server.fail(None, path="token", latency_ms=200)  # slow, then normal
    started = time.monotonic()
    assert "access_token" in await get_token(http, server.url)
    assert time.monotonic() - started >= 0.2
    server.latency_ms = 100
    started = time.monotonic()
    await get_token(http, server.url)
    assert time.monotonic() - started >= 0.1


# --- control endpoints ------------------------------------------------------------------------------


async def control(http: aiohttp.ClientSession, url: str, path: str, body: Any = None, method: str = "POST") -> dict:
    async with http.request(method, f"{url}/_control/{path}", json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_control_endpoints_drive_the_server_from_another_process(server, http):
    token = (await get_token(http, server.url))["access_token"]
    await control(http, server.url, "outside_window", {"openid": BOB})
    await control(http, server.url, "unsubscribed", {"openid": ALICE})
    send = "/cgi-bin/message/custom/send"
    assert (await post(http, server.url, send, token, text(BOB)))[1]["errcode"] == 45015
    assert (await post(http, server.url, send, token, text(ALICE)))[1]["errcode"] == 43004
    await control(http, server.url, "interacted", {"openid": BOB})
    await control(http, server.url, "interacted", {"openid": ALICE})
    assert (await post(http, server.url, send, token, text(BOB, "一")))[1]["errcode"] == 0
    assert (await post(http, server.url, send, token, text(ALICE, "二")))[1]["errcode"] == 0

    await control(http, server.url, "expire_token")
    assert (await post(http, server.url, send, token, text(ALICE)))[1]["errcode"] == 42001
    token = (await get_token(http, server.url))["access_token"]

    pending = await control(
        http, server.url, "faults", {"faults": [{"path": "custom", "errcode": 45009}, {"path": "menu", "times": 2}]}
    )
    assert pending == {"pending_faults": 2}
    assert (await post(http, server.url, send, token, text(ALICE)))[1]["errcode"] == 45009
    assert (await control(http, server.url, "faults", method="DELETE")) == {"pending_faults": 0}

    await control(http, server.url, "templates", {"template_id": "tpl-new"})
    _, reply = await post(http, server.url, "/cgi-bin/message/template/send", token, template(ALICE, "tpl-new"))
    assert reply["errcode"] == 0
    assert await control(http, server.url, "latency", {"latency_ms": 0}) == {"latency_ms": 0}

    state = await control(http, server.url, "state", method="GET")
    assert state["token_requests"] == 2 and state["message_count"] == 3 and state["pending_faults"] == 0
    page = await control(http, server.url, "messages?since=1&limit=1", method="GET")
    assert page["next"] == 2 and [m["text"] for m in page["messages"]] == ["二"]
    rest = await control(http, server.url, "messages?since=2", method="GET")
    assert rest["next"] == 3 and rest["messages"][0]["template_id"] == "tpl-new"

    assert (await control(http, server.url, "reset"))["token_requests"] == 0
    assert server.messages == [] and server.token is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("faults", {"path": "nowhere"}),
        ("faults", {"errcode": 1, "surprise": True}),
        ("latency", {"latency_ms": -5}),
        ("outside_window", {}),
        ("templates", {"template_id": ""}),
    ],
)
async def test_control_endpoints_refuse_bad_input(server, http, path, body):
    async with http.post(f"{server.url}/_control/{path}", json=body) as response:
        assert response.status == 400


# --- independent client and standalone process ------------------------------------------------------


class LocalWeChatClient(WeChatClient):
    """wechatpy's synchronous client, pointed at the local server instead of api.weixin.qq.com."""

    def __init__(self, base: str) -> None:
        super().__init__(APP_ID, SECRET, timeout=5)
        self.base = base
        self.API_BASE_URL = f"{base}/cgi-bin/"

    def fetch_access_token(self) -> dict:
        params = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret}
        return self._fetch_access_token(url=f"{self.base}/cgi-bin/token", params=params)


async def test_wechatpy_speaks_to_the_local_server(server):
    def run() -> None:
        client = LocalWeChatClient(server.url)
        assert client.message.send_text(ALICE, "您好")["errcode"] == 0
        server.expire_token()  # wechatpy refreshes on 42001 and retries, as WeChat clients must
        assert client.message.send_template(BOB, "tpl-bill-due", {"amount": {"value": "1"}})["msgid"] > 0
        client.menu.create(VALID_MENU)
        with pytest.raises(WeChatClientException) as refused:
            client.message.send_template(BOB, "tpl-unknown", {})
        assert refused.value.errcode == 40037

    await asyncio.to_thread(run)
    assert [m.kind for m in server.messages] == ["custom", "template"]
    assert server.token_requests == 2 and server.menu == VALID_MENU


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_runs_as_its_own_process(http):
    port = free_port()
    args = ["-m", "providers.wechat_api", "--port", str(port), "--app-id", APP_ID, "--secret", SECRET]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, "--template", "tpl-a", cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line.decode().strip() == f"LocalWeChat listening on http://127.0.0.1:{port}"
        url = f"http://127.0.0.1:{port}"
        token = (await get_token(http, url))["access_token"]
        _, reply = await post(http, url, "/cgi-bin/message/template/send", token, template(ALICE, "tpl-b"))
        assert reply["errcode"] == 40037
        assert (await post(http, url, "/cgi-bin/message/custom/send", token, text(ALICE)))[1]["errcode"] == 0
        assert (await control(http, url, "state", method="GET"))["message_count"] == 1
    finally:
        process.terminate()  # SIGTERM: the server stops cleanly and exits 0
        assert await asyncio.wait_for(process.wait(), 10) == 0
