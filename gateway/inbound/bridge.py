"""The bot bridge: one turn through Rasa's REST webhook, guarded by a timeout, a bounded retry
and a circuit breaker, so a slow or dead Rasa costs a citizen seconds, not a hung chat."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from channels.base import Reply
from gateway import metrics
from intents.menu import OUTCOME_KEY, OUTCOMES

log = logging.getLogger(__name__)

PROBE_TEXT = "你好"


class BotUnavailable(Exception):
    """Rasa could not answer this turn (down, erroring, too slow, or the breaker is open)."""


def reply_from_rasa(raw: dict[str, Any]) -> Reply:
    """One message of Rasa's REST answer as the channels' Reply; what is not text or buttons (an image, a
    custom payload) is not carried by any channel here and is dropped."""
    raw_buttons = raw.get("buttons")
    buttons = [
        {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
        for b in (raw_buttons if isinstance(raw_buttons, list) else [])
        if isinstance(b, dict)
    ]
    text = raw.get("text")
    return Reply(text if isinstance(text, str) else "", buttons)


@dataclass(frozen=True)
class BotTurn:
    """What Rasa answered: the replies, and the outcome the bot reported for the turn when it could not
    serve the question (intents.menu: declined, not_understood, suggested), else None."""

    replies: list[Reply] = field(default_factory=list)
    outcome: str | None = None


def bot_turn(payload: list[dict[str, Any]]) -> BotTurn:
    """Rasa's REST answer: text/button messages become replies; the bot's outcome rides in a custom
    message of its own ({"custom": {OUTCOME_KEY: ...}}), which no channel shows. An outcome this gateway
    does not know is dropped: it becomes a metric label and a stored value."""
    outcome = None
    replies = []
    for raw in payload:
        custom = raw.get("custom")
        if isinstance(custom, dict) and OUTCOME_KEY in custom:
            if custom[OUTCOME_KEY] in OUTCOMES:
                outcome = custom[OUTCOME_KEY]
            else:
                log.warning("the bot reported an unknown turn outcome %.40r: ignored", custom[OUTCOME_KEY])
            continue
        replies.append(reply_from_rasa(raw))
    return BotTurn(replies, outcome)


class CircuitBreaker:
    """Closed → open after `failures` consecutive failures; after `reset_s` one trial call is let
    through (half-open); its success closes the breaker, its failure opens it again."""

    def __init__(self, failures: int, reset_s: float, clock=time.monotonic) -> None:
        self.failures, self.reset_s, self._clock = failures, reset_s, clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half-open" if self._clock() - self._opened_at >= self.reset_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def abandon(self) -> None:
        """The call allow() let through ended without an outcome (cancelled): allow another trial."""
        self._trial_running = False

    def record_success(self) -> None:
        self._consecutive, self._opened_at, self._trial_running = 0, None, False

    def record_failure(self) -> None:
        self._consecutive += 1
        self._trial_running = False
        if self._opened_at is not None or self._consecutive >= self.failures:
            self._opened_at = self._clock()


class RasaBridge:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 2,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retries = retries
        self.breaker = breaker or CircuitBreaker(failures=3, reset_s=15.0)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def turn(self, sender: str, text: str, metadata: dict[str, Any]) -> list[Reply]:
        return (await self.answer(sender, text, metadata)).replies

    async def answer(self, sender: str, text: str, metadata: dict[str, Any]) -> BotTurn:
        """One turn through Rasa; BotUnavailable when it cannot be had."""
        if self.breaker.state == "half-open":
            await self.probe()  # the gateway tries Rasa itself; a citizen's turn is nobody's experiment
        if not self.breaker.allow():
            metrics.RASA_FAILURES.labels("circuit_open").inc()
            raise BotUnavailable("circuit open")
        body = {"sender": sender, "message": text, "metadata": metadata}
        url = f"{self.base_url}/webhooks/rest/webhook"
        for attempt in range(self.retries + 1):
            try:
                with metrics.RASA_REQUEST_DURATION.time():
                    async with self._http().post(url, json=body) as response:
                        if response.status == 200:
                            payload = await response.json()
                            if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
                                raise ValueError(f"not a list of messages: {type(payload).__name__}")
                            self.breaker.record_success()
                            return bot_turn(payload)
                        reason, kind = f"HTTP {response.status}", "http"
                        # 502/503 come from a proxy or a Rasa still loading: the turn never ran.
                        retryable = response.status in (502, 503)
            except aiohttp.ClientConnectorError as exc:
                reason, kind, retryable = f"connect: {exc.os_error}", "connect", True  # nothing reached Rasa
            except TimeoutError:
                # Rasa may still run this turn: re-sending it would answer twice.
                reason, kind, retryable = "timeout", "timeout", False
            except (aiohttp.ClientError, ValueError) as exc:
                reason, kind, retryable = f"{type(exc).__name__}", "invalid", False
            except asyncio.CancelledError:
                self.breaker.abandon()  # a half-open trial that never finished must not block the next one
                raise
            if not retryable or attempt == self.retries:
                break
            await asyncio.sleep(0.2 * 2**attempt)
        self.breaker.record_failure()
        metrics.RASA_FAILURES.labels(kind).inc()
        log.warning("rasa turn failed: %s (breaker %s)", reason, self.breaker.state)
        raise BotUnavailable(reason)

    async def probe(self) -> str:
        """Once the breaker has waited reset_s: one NLU parse (no conversation is touched) decides whether
        Rasa is back — closed on success, open again with a fresh wait on failure. Run by /healthz and by
        the next turn, so the breaker closes with no citizen's message at stake and no traffic needed.
        Returns the breaker's state."""
        if self.breaker.state != "half-open" or not self.breaker.allow():
            return self.breaker.state  # not due, or another probe or trial is running
        try:
            async with self._http().post(
                f"{self.base_url}/model/parse", json={"text": PROBE_TEXT}, timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                ok = response.status == 200 and isinstance(await response.json(), dict)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            ok = False
        except asyncio.CancelledError:
            self.breaker.abandon()
            raise
        if ok:
            self.breaker.record_success()
        else:
            self.breaker.record_failure()
        log.info("rasa probe %s: breaker %s", "answered" if ok else "failed", self.breaker.state)
        return self.breaker.state

    async def healthy(self) -> bool:
        try:
            async with self._http().get(f"{self.base_url}/status", timeout=aiohttp.ClientTimeout(total=2)) as r:
                return r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False
