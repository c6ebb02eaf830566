"""A stand-in for Rasa's REST channel, on 127.0.0.1, whose behaviour a test switches at will.

It speaks the contract the gateway's bridge relies on:

* ``POST /webhooks/rest/webhook`` {"sender", "message", "metadata"} → a JSON list of
  {"recipient_id", "text", "buttons": [{"title", "payload"}]}
* ``GET /status`` → 200 JSON

Behaviours: answer normally (a recognisable echo of the message), fail with an HTTP status,
hang longer than any bridge timeout, fail a scripted number of times then answer, or be stopped
(connection refused, on the same port so a restart brings "Rasa" back at the same URL).
Every webhook request is recorded, including those it then fails or hangs on.

Also here, shared by the in-process tests: the real gateway app (``create_app``) on a fresh,
migrated SQLite file behind aiohttp's TestServer, plus plain-sqlite3 reads of what it recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.migrate import upgrade

ECHO_PREFIX = "收到："
BUTTON = {"title": "返回主菜单", "payload": "/main_menu"}


def echo_text(message: str) -> str:
    return f"{ECHO_PREFIX}{message}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class FakeRasa:
    mode: str = "ok"  # ok | error (answer with `status`) | hang | raw (answer `raw_body` with 200)
    status: int = 500
    delay_s: float = 0.0  # a slow but successful answer
    raw_body: Any = None
    port: int = field(default_factory=_free_port)
    requests: list[dict[str, Any]] = field(default_factory=list)
    parses: list[str] = field(default_factory=list)  # /model/parse texts (the gateway's probes)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _script: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    def answer_normally(self) -> None:
        self.mode, self._script = "ok", []

    def fail_with(self, status: int) -> None:
        self.mode, self.status = "error", status

    def hang(self) -> None:
        self.mode = "hang"

    def fail_next(self, *statuses: int) -> None:
        """The next requests are answered with these statuses, in order, then the mode applies."""
        self._script = list(statuses)

    def answer_raw(self, body: Any) -> None:
        """Answer 200 with this JSON value, whatever it is (a broken Rasa or proxy)."""
        self.mode, self.raw_body = "raw", body

    def texts(self) -> list[str]:
        return [r["message"] for r in self.requests]

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/webhooks/rest/webhook", self._webhook)
        app.router.add_get("/status", self._status)
        app.router.add_post("/model/parse", self._parse)
        runner = web.AppRunner(app, shutdown_timeout=0.1, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port, reuse_address=True).start()
        self._release = asyncio.Event()
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening: from now on connections to the port are refused."""
        self._release.set()  # hung handlers return at once instead of holding the shutdown
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        # Rasa's lock store: one conversation's turns run one at a time, others wait their turn.
        async with self._locks.setdefault(str(body.get("sender")), asyncio.Lock()):
            return await self._answer(body)

    async def _answer(self, body: dict[str, Any]) -> web.StreamResponse:
        self.requests.append(body)
        if self._script:
            return web.json_response({"error": "scripted failure"}, status=self._script.pop(0))
        if self.mode == "error":
            return web.json_response({"error": "scripted failure"}, status=self.status)
        if self.mode == "hang":
            try:
                await asyncio.wait_for(self._release.wait(), 30)
            except TimeoutError:
                pass
        if self.mode == "raw":
            return web.json_response(self.raw_body)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return web.json_response(
            [{"recipient_id": body.get("sender"), "text": echo_text(body.get("message", "")), "buttons": [BUTTON]}]
        )

    async def _parse(self, request: web.Request) -> web.StreamResponse:
        """/model/parse as Rasa answers it; failing, hanging or answering raw as the webhook does."""
        body = await request.json()
        self.parses.append(body.get("text", ""))
        if self.mode == "error":
            return web.json_response({"error": "scripted failure"}, status=self.status)
        if self.mode == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), 30)
        return web.json_response({"text": body.get("text", ""), "intent": {"name": "greet", "confidence": 0.99}})

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response({"version": "3.6.21", "model_file": "fake.tar.gz", "num_active_training_jobs": 0})


# --- the real gateway, in-process, in front of a FakeRasa ----------------------------------------


def make_template_database(directory: Path) -> Path:
    """A migrated, empty SQLite file; tests copy it instead of migrating again."""
    path = directory / "template.db"
    upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:  # fold the WAL into the main file so one file copy is enough
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@dataclass
class Gateway:
    """The real app (create_app) behind aiohttp's TestServer, and the SQLite file it writes."""

    client: TestClient
    db_path: Path
    rasa: FakeRasa

    @property
    def app(self) -> web.Application:
        return self.client.server.app

    async def post(self, body: Any, **kwargs: Any) -> tuple[int, Any]:
        """POST to the REST endpoint: a dict is sent as JSON, bytes/str as they are."""
        if isinstance(body, dict | list):
            kwargs["json"] = body
        else:
            kwargs["data"] = body
            kwargs.setdefault("headers", {"Content-Type": "application/json"})
        async with self.client.post("/api/webchat/messages", **kwargs) as response:
            try:
                payload = await response.json(content_type=None)
            except ValueError:
                payload = await response.text()
            return response.status, payload

    async def new_session(self) -> str:
        """A session as the server issues one to an integration."""
        async with self.client.post("/api/webchat/sessions") as response:
            assert response.status == 201, await response.text()
            return (await response.json())["session"]

    async def say(self, session: str, text: str, message_id: str | None = None) -> tuple[int, Any]:
        body = {"session": session, "text": text}
        if message_id is not None:
            body["id"] = message_id
        return await self.post(body)

    async def health(self) -> tuple[int, Any]:
        async with self.client.get("/healthz") as response:
            return response.status, await response.json()

    # What the database recorded, read with plain sqlite3 (not through the gateway's code).

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params)]

    def inbound(self, session: str, message_id: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT * FROM message WHERE channel = 'webchat' AND direction = 'in' AND external_id = ?",
            f"{session}:{message_id}",
        )
        assert len(rows) <= 1, rows
        return rows[0] if rows else None

    def replies_to(self, inbound_id: int) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM message WHERE in_reply_to = ? ORDER BY id", inbound_id)
        for row in rows:
            row["buttons"] = json.loads(row["buttons"] or "null") or []
        return rows

    def inbound_of_session(self, session: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT m.* FROM message m JOIN conversation c ON c.id = m.conversation_id "
            "JOIN channelidentity i ON i.id = c.identity_id "
            "WHERE i.channel = 'webchat' AND i.address = ? AND m.direction = 'in' ORDER BY m.id",
            session,
        )

    def conversations_of(self, session: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT c.* FROM conversation c JOIN channelidentity i ON i.id = c.identity_id "
            "WHERE i.channel = 'webchat' AND i.address = ?",
            session,
        )


@contextlib.asynccontextmanager
async def running_gateway(template: Path, directory: Path, rasa: FakeRasa, **overrides: Any) -> AsyncIterator[Gateway]:
    db_path = directory / f"gateway-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, db_path)
    options: dict[str, Any] = {
        "database_url": f"sqlite:///{db_path}",
        "redis_url": None,
        "rasa_url": rasa.url,
        "rasa_timeout_s": 0.5,
        "rasa_retries": 2,
        "breaker_failures": 3,
        "breaker_reset_s": 1.0,
        "rate_limit_per_minute": 1000,
        "rate_limit_per_address_per_minute": 100_000,
        "webchat_session_secret": "fake-rasa-tests-webchat-secret",
        **overrides,
    }
    client = TestClient(TestServer(create_app(Settings(**options)), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Gateway(client, db_path, rasa)
    finally:
        await client.close()


CJK = re.compile(r"[\u4e00-\u9fff]")


def is_chinese(text: Any) -> bool:
    return isinstance(text, str) and bool(CJK.search(text))


def new_session() -> str:
    return f"test-{uuid.uuid4().hex}"


def new_id() -> str:
    return uuid.uuid4().hex[:16]
