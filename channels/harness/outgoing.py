"""Outgoing cases: how the provider behaves → what it was asked to send, and what the dispatcher is told."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from channels.base import Outgoing, Sender, SendError, SendResult
from channels.harness.network import loopback_only
from channels.harness.secrets import assert_no_leaks


@dataclass
class OutgoingCase:
    name: str
    message: Outgoing
    arrange: Callable[[Any], Any] | None = None  # set the local provider up: a fault, an opted-out number…
    error: str | None = None  # the SendError kind expected; None means the send succeeds
    code: str | None = None  # the provider's error code carried by the SendError
    sent: list[dict[str, Any]] = field(default_factory=list)  # fields of the requests the provider recorded


async def run_outgoing(
    case: OutgoingCase,
    sender: Sender,
    provider: Any,
    recorded: Callable[[Any], list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
    secrets: list[str],
) -> SendResult | SendError:
    """Send the case's message through the real sender to the local provider server; check the outcome
    and that exactly the expected requests reached the provider."""
    caplog.set_level(logging.DEBUG)
    if case.arrange is not None:
        arranged = case.arrange(provider)
        if isinstance(arranged, Awaitable):
            await arranged
    before = len(recorded(provider))
    with loopback_only():
        try:
            outcome: SendResult | SendError = await sender.send(case.message)
        except SendError as exc:
            outcome = exc
    if case.error is None:
        assert isinstance(outcome, SendResult), f"{case.name}: {outcome}"
        assert outcome.provider_id, f"{case.name}: no provider id"
    else:
        assert isinstance(outcome, SendError), f"{case.name}: expected {case.error}, got {outcome}"
        assert outcome.kind == case.error, f"{case.name}: {outcome}"
        if case.code is not None:
            assert outcome.code == case.code, f"{case.name}: code {outcome.code}"
    requests = recorded(provider)[before:]
    assert len(requests) == len(case.sent), f"{case.name}: provider recorded {len(requests)} messages"
    for request, expected in zip(requests, case.sent, strict=True):
        for key, value in expected.items():
            assert request.get(key) == value, f"{case.name}: {key} = {request.get(key)!r}, expected {value!r}"
    assert_no_leaks(caplog.records, [*secrets, case.message.to])
    return outcome
