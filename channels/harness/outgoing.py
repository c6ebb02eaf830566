"""Outgoing cases: how the provider behaves → what it was asked to send, and what the dispatcher is told.

Every expectation a case leaves out means "absent" and is checked (no error code, no Retry-After, nothing
recorded by the provider); ANY opts one out, for what a case cannot know or does not pin down."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from typing_extensions import TypeIs

from channels.base import Outgoing, Sender, SendError, SendResult
from channels.harness.network import loopback_only, unused_url
from channels.harness.secrets import assert_no_leaks


class _Any:
    def __repr__(self) -> str:
        return "ANY"


ANY: Final[Any] = _Any()  # "not checked": typed Any so that it fits every expectation field

# make_sender(url, **case.options) → a Sender pointed at url (the provider's, or nowhere for `down` cases)
SenderFactory = Callable[..., Sender | Awaitable[Sender]]


@dataclass
class OutgoingCase:
    name: str
    message: Outgoing
    arrange: Callable[[Any], Any] | None = None  # set the local provider up: a fault, an opted-out number…
    error: str | None = None  # the SendError kind expected; None means the send succeeds
    code: str | None = None  # the SendError's code (None: it carries none)
    retry_after_s: float | None = None  # the SendError's Retry-After (None: it carries none)
    status: str = ANY  # a success's SendResult.status
    provider_id_field: str | None = None  # the recorded field holding the provider's id, which a success must carry
    sent: list[dict[str, Any]] = field(default_factory=list)  # fields of each request the provider recorded, in order
    options: dict[str, Any] = field(default_factory=dict)  # keyword arguments for the sender factory
    down: bool = False  # nothing listens where the sender is pointed
    check: Callable[[Any, SendResult | SendError], Any] | None = None  # check(provider, outcome): counters…


def _is_factory(sender: Sender | SenderFactory) -> TypeIs[SenderFactory]:
    return isinstance(sender, type) or not hasattr(sender, "send")  # a Sender class is a factory too


async def _settle(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def run_outgoing(
    case: OutgoingCase,
    sender: Sender | SenderFactory,
    provider: Any,
    recorded: Callable[[Any], list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
    secrets: Iterable[str] | Callable[[], Iterable[str]],
) -> SendResult | SendError:
    """Send the case's message through the real sender to the local provider server; check the outcome,
    that exactly the expected requests reached the provider, and that nothing secret reached the logs.

    sender: a Sender, used as it is (its owner closes it), or a factory called with `provider.url`
    (an unused loopback URL for a `down` case) and the case's options, whose sender is closed here.
    secrets: the strings no log line or error may hold; a callable is read after the send, so that
    secrets the provider issued during it (access tokens) count too."""
    caplog.set_level(logging.DEBUG)
    is_factory = _is_factory(sender)
    assert is_factory or not (case.down or case.options), f"{case.name}: down and options need a sender factory"
    with loopback_only():
        if _is_factory(sender):  # again: mypy narrows on the call, not on a saved result
            made: Sender = await _settle(sender(unused_url() if case.down else provider.url, **case.options))
        else:
            made = sender
        try:
            if case.arrange is not None:
                await _settle(case.arrange(provider))
            before = len(recorded(provider))
            try:
                outcome: SendResult | SendError = await made.send(case.message)
            except SendError as exc:
                outcome = exc
        finally:
            if is_factory:
                await made.close()
    requests = recorded(provider)[before:]
    if case.error is None:
        assert isinstance(outcome, SendResult), f"{case.name}: {outcome}"
        assert outcome.provider_id, f"{case.name}: no provider id"
        if case.status is not ANY:
            assert outcome.status == case.status, f"{case.name}: status {outcome.status!r}"
        if case.provider_id_field is not None:
            assert requests, f"{case.name}: nothing recorded to hold the provider id"
            own = str(requests[-1].get(case.provider_id_field))
            assert outcome.provider_id == own, f"{case.name}: provider id {outcome.provider_id!r}, recorded {own!r}"
    else:
        assert isinstance(outcome, SendError), f"{case.name}: expected {case.error}, got {outcome}"
        assert outcome.kind == case.error, f"{case.name}: {outcome}"
        if case.code is not ANY:
            assert outcome.code == case.code, f"{case.name}: code {outcome.code!r}"
        if case.retry_after_s is not ANY:
            assert outcome.retry_after_s == case.retry_after_s, f"{case.name}: Retry-After {outcome.retry_after_s!r}"
    if case.sent is not ANY:
        assert len(requests) == len(case.sent), f"{case.name}: provider recorded {len(requests)} messages"
        for request, expected in zip(requests, case.sent, strict=True):
            for key, value in expected.items():
                assert key in request, f"{case.name}: the provider records no {key!r}"
                assert request[key] == value, f"{case.name}: {key} = {request[key]!r}, expected {value!r}"
    if case.check is not None:
        await _settle(case.check(provider, outcome))
    needles = [*(secrets() if callable(secrets) else secrets), case.message.to]
    assert_no_leaks(caplog.records, needles)
    if isinstance(outcome, SendError):  # the dispatcher logs and stores this text
        said = f"{outcome} {outcome.reason}"
        leaked = [needle[:3] for needle in needles if needle and needle in said]
        assert not leaked, f"{case.name}: {leaked} leaked into the SendError"
    return outcome
