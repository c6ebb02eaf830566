"""Web chat's REST endpoint through the shared channel harness: what reaches the gateway and what
the browser or integration gets back. (The WebSocket and the page are tested in tests/.)"""

import json
import time
from datetime import timedelta

import pytest

from channels.harness import IncomingCase, run_incoming
from channels.webchat.handler import WebChatChannel
from channels.webchat.sessions import SessionIds
from gateway.state import MemoryState

PATH = "/api/webchat/messages"


async def never_used(_session: str) -> None:
    return None


SECRET = b"webchat-test-secret-0123456789"
IDS = SessionIds(SECRET, never_used)  # the server's: it mints the sessions below
SESSION = IDS.mint()
MADE_UP = "k3Jd9_fQ2mZx"  # well-formed, but no server issued it
OTHER_SERVER = SessionIds(b"another-deployments-secret-0123", never_used).mint()
LONG_IDLE = SessionIds(SECRET, never_used, clock=lambda: time.time() - timedelta(days=31).total_seconds()).mint()


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
    IncomingCase(
        "a made-up session",
        PATH,
        body(session=MADE_UP),
        content_type=JSON,
        status=401,
        response_contains="session_unknown",
    ),
    IncomingCase(
        "another server's session",
        PATH,
        body(session=OTHER_SERVER),
        content_type=JSON,
        status=401,
        response_contains="不是本服务签发的",
    ),
    IncomingCase(
        "a session unused for 31 days",
        PATH,
        body(session=LONG_IDLE),
        content_type=JSON,
        status=401,
        response_contains="session_expired",
    ),
    IncomingCase(
        "a new session for an integration", "/api/webchat/sessions", "", status=201, response_contains="session"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_webchat_rest(case, caplog):
    def routes(intake):
        async def no_history(_session: str) -> list:
            return []

        return WebChatChannel(MemoryState(), no_history, IDS).routes(intake)

    await run_incoming(case, routes, caplog, [SESSION])


async def test_the_page_runs_only_its_own_code_and_cannot_be_framed():
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    async def history(session: str) -> list:
        return []

    app = web.Application()
    app.router.add_routes(WebChatChannel(MemoryState(), history, IDS).routes(handler=None))  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        assert response.status == 200
        policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
