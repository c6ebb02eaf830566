"""Web chat's REST endpoint through the shared channel harness: what reaches the gateway and what
the browser or integration gets back. (The WebSocket and the page are tested in tests/.)"""

import json

import pytest

from channels.harness import IncomingCase, run_incoming
from channels.webchat.handler import WebChatChannel
from gateway.state import MemoryState

PATH = "/api/webchat/messages"
SESSION = "k3Jd9_fQ2mZx"


def body(**fields) -> str:
    return json.dumps({"session": SESSION, "text": "12路到哪了", "id": "m1", **fields}, ensure_ascii=False)


JSON = "application/json"
CASES = [
    IncomingCase(
        "a message",
        PATH,
        body(),
        content_type=JSON,
        response_contains="收到：12路到哪了",
        message={"channel": "webchat", "sender": SESSION, "external_id": f"{SESSION}:m1", "text": "12路到哪了"},
    ),
    IncomingCase(
        "resent by a reconnecting browser → one message", PATH, body(), content_type=JSON, repeat=3, accepted=1
    ),
    IncomingCase("not JSON", PATH, "text=hi", content_type=JSON, status=400, response_contains="JSON"),
    IncomingCase("not UTF-8", PATH, b"\xff\xfe{}", content_type=JSON, status=400),
    IncomingCase("a JSON list", PATH, "[1, 2]", content_type=JSON, status=400),
    IncomingCase(
        "session too short", PATH, body(session="abc"), content_type=JSON, status=400, response_contains="session"
    ),
    IncomingCase("text not a string", PATH, body(text=12), content_type=JSON, status=400, response_contains="text"),
    IncomingCase("NUL in the text", PATH, body(text="a\u0000b"), content_type=JSON, status=400),
    IncomingCase("id with spaces", PATH, body(id="a b"), content_type=JSON, status=400, response_contains="id"),
    IncomingCase("deeply nested JSON", PATH, "[" * 100000 + "]" * 100000, content_type=JSON, status=413),
    IncomingCase("GET is not allowed", PATH, "", method="GET", status=405),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_webchat_rest(case, caplog):
    def routes(intake):
        async def no_history(_session: str) -> list:
            return []

        return WebChatChannel(MemoryState(), no_history).routes(intake)

    await run_incoming(case, routes, caplog, [SESSION])


async def test_the_page_runs_only_its_own_code_and_cannot_be_framed():
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    async def history(session: str) -> list:
        return []

    app = web.Application()
    app.router.add_routes(WebChatChannel(MemoryState(), history).routes(handler=None))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        assert response.status == 200
        policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
