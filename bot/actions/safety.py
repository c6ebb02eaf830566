"""Never silent: an action that fails still answers the citizen, in Chinese, with a reference to quote.

Without this an exception inside an action leaves the turn with no reply at all (Rasa logs the error
and moves on), which a citizen reads as the assistant ignoring them."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from common import trace
from common.privacy import mask, where  # session ids are the chat's credential: masked

log = logging.getLogger("bot.actions")

FAILED = (
    "抱歉，刚才处理您的请求时出了问题，没有办成（问题编号 {ref}）。"
    "请稍后再试，或发送“菜单”选择其他服务；也可拨打12345政务服务热线。"
)

Run = Callable[[Any, CollectingDispatcher, Tracker, DomainDict], Awaitable[list[EventType]]]


class _Runs(Protocol):
    """What never_silent wraps: a rasa-sdk Action's run."""

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]: ...


A = TypeVar("A", bound=type[_Runs])


def never_silent(cls: A) -> A:
    """Wraps the action's run: on any exception, drop its half-said messages, answer FAILED and return
    the class's `failure_events` (default: none, so an open form simply asks its question again)."""
    run: Run = cls.run

    @functools.wraps(run)
    async def guarded(self: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict):
        # the gateway's trace id rides in the turn's metadata: this action's log lines carry it
        metadata = (tracker.latest_message or {}).get("metadata") or {}
        with trace.bound(metadata.get(trace.METADATA_KEY)):
            return await _run_or_apologise(self, run, dispatcher, tracker, domain)

    # Replaced in place, not subclassed: rasa-sdk registers every Action subclass by its name().
    cls.run = guarded  # type: ignore[method-assign]
    return cls


async def _run_or_apologise(
    self: Any, run: Run, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
) -> list[EventType]:
    try:
        return await run(self, dispatcher, tracker, domain)
    except Exception as exc:
        ref = secrets.token_hex(3).upper()
        log.error(
            "action %s failed with %s at %s (ref %s, conversation %s)",
            self.name(),
            type(exc).__name__,
            where(exc),
            ref,
            mask(tracker.sender_id),
        )
        dispatcher.messages.clear()
        dispatcher.utter_message(text=FAILED.format(ref=ref))
        failure_events = getattr(self, "failure_events", None)
        return failure_events(tracker) if failure_events else []
