"""Incoming cases: a webhook request → the response and what the channel handed the gateway."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from channels.base import InboundMessage, Reply, StatusUpdate, TurnResult
from channels.harness.network import loopback_only
from channels.harness.secrets import assert_no_leaks
from channels.http import PrivateAccessLogger


@dataclass
class Signed:
    """What a correct sender adds to a request: headers, query parameters, or a new (encrypted) body."""

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, str] | bytes | str | None = None


# sign(url without query, body) → how the provider would sign (and, for WeChat safe mode, encrypt) it
Signer = Callable[[str, Any], Signed]


@dataclass
class IncomingCase:
    name: str
    path: str
    body: dict[str, str] | bytes | str  # a dict is sent as a form, bytes/str as they are
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    sign: Signer | None = None  # None: sent unsigned
    status: int = 200
    response: str | None = None  # the exact response body expected, when it matters
    response_contains: str | None = None
    message: dict[str, Any] | None = None  # fields of the InboundMessage the gateway must receive
    update: dict[str, Any] | None = None  # fields of the StatusUpdate the gateway must receive
    repeat: int = 1  # send the same request this many times (a provider's retries)
    accepted: int | None = None  # messages the gateway must have queued afterwards (default: 1 if message)


class RecordingIntake:
    """The gateway side of the contract, recording instead of queueing (dedupe as the real one).
    Also a MessageHandler for channels answered in the request itself (web chat): it echoes."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.updates: list[StatusUpdate] = []
        self._seen: set[tuple[str, str]] = set()

    async def accept(self, message: InboundMessage) -> bool:
        key = (message.channel, message.external_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        self.messages.append(message)
        return True

    async def status(self, update: StatusUpdate) -> None:
        self.updates.append(update)

    async def handle(self, message: InboundMessage) -> TurnResult:
        first = await self.accept(message)
        return TurnResult([Reply(f"收到：{message.text}")], duplicate=not first)


async def run_incoming(
    case: IncomingCase,
    make_routes: Callable[[RecordingIntake], list[web.RouteDef]],
    caplog: pytest.LogCaptureFixture,
    secrets: list[str],
    client_max_size: int = 64 * 1024,
) -> RecordingIntake:
    """Serve the channel, send the case's request (repeat times), check everything the case states."""
    intake = RecordingIntake()
    app = web.Application(client_max_size=client_max_size)
    app.router.add_routes(make_routes(intake))
    caplog.set_level(logging.DEBUG)
    with loopback_only():
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(access_log_class=PrivateAccessLogger)  # the gateway's own access log
        async with TestClient(server) as client:
            url = str(client.make_url(case.path))
            for _ in range(case.repeat):
                headers, query, body = dict(case.headers), dict(case.query), case.body
                if case.sign is not None:
                    signed = case.sign(url, case.body)
                    headers.update(signed.headers)
                    query.update(signed.query)
                    body = signed.body if signed.body is not None else body
                if case.content_type:
                    headers["Content-Type"] = case.content_type
                response = await client.request(
                    case.method,
                    case.path,
                    params=query,
                    data=body if case.method != "GET" else None,
                    headers=headers,
                )
                text = await response.text()
                assert response.status == case.status, f"{case.name}: {response.status} {text[:200]}"
                if case.response is not None:
                    assert text == case.response, f"{case.name}: response {text[:200]!r}"
                if case.response_contains is not None:
                    assert case.response_contains in text, f"{case.name}: response {text[:200]!r}"
    expected = case.accepted if case.accepted is not None else (1 if case.message else 0)
    assert len(intake.messages) == expected, f"{case.name}: {len(intake.messages)} messages queued"
    if case.message:
        got = intake.messages[0]
        for key, value in case.message.items():
            actual = getattr(got, key, None) if key != "metadata" else got.metadata
            assert actual == value, f"{case.name}: {key} = {actual!r}, expected {value!r}"
    if case.update:
        assert len(intake.updates) == 1, f"{case.name}: {len(intake.updates)} status updates"
        for key, value in case.update.items():
            assert getattr(intake.updates[0], key) == value, f"{case.name}: {key}"
    elif case.update is None and not case.message:
        assert not intake.updates, f"{case.name}: unexpected status update"
    assert_no_leaks(caplog.records, secrets)
    return intake
