"""The dispatch worker: takes rendered messages off the outbound queue and gets them to the providers.

Per delivery: on a rate-limited channel, skip what the delivery log says is done and wait for the
provider's shared rate limit → claim the message's ref so no other copy is sent at the same moment →
look at the log → send → record the outcome → ack. Provider errors follow SendError.kind: retry (back off, give up after
max_attempts), permanent / opted_out (record, never retry), window_closed (the log offers a fallback
message, which replaces this one in the queue). Anything else that goes wrong puts the message back;
a worker that dies leaves its entries pending and another worker reclaims them after visibility_ms.
See DESIGN.md for the delivery guarantee.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

from channels.base import Outgoing, Sender, SendError, SendResult
from common import trace
from gateway import metrics
from gateway.logs import mask, where
from gateway.outbound.queue import Delivery, OutboundQueue
from gateway.outbound.ratelimit import RateLimiter

log = logging.getLogger(__name__)

UNITS = ("message", "segment")  # what a channel's rate counts
STATS = ("sent", "failed", "retried", "fallbacks", "skipped", "reclaimed", "busy", "errors", "record_errors")


class DeliveryLog(Protocol):
    """Where outcomes are kept (the SQL database in production), keyed by Outgoing.ref."""

    async def should_send(self, ref: str) -> bool:
        """False when the message was already sent, has failed for good, or was cancelled."""

    async def sent(self, ref: str, result: SendResult, message: Outgoing) -> None:
        """The provider accepted the message (message.attempt = earlier tries)."""

    async def retrying(self, ref: str, attempt: int, reason: str, code: str | None, delay_s: float) -> None:
        """Try number `attempt` failed for a passing reason; the next comes in about delay_s."""

    async def failed(self, ref: str, kind: str, reason: str, code: str | None) -> None:
        """Final: kind is permanent | opted_out | window_closed."""

    async def fallback(self, message: Outgoing, kind: str, reason: str) -> Outgoing | None:
        """Another way to reach the recipient of a message that failed for good (kind: permanent |
        opted_out | window_closed): a WeChat template message, an SMS, or None. It is queued in place of
        `message`; give it the same ref to keep one record."""


def default_consumer() -> str:
    """Unique per process: consumers own their pending entries, so two workers must never share a name."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def _scrub(text: str, message: Outgoing) -> str:
    # provider error texts often quote the recipient ("The 'To' number +86... is not valid"); a short
    # address is a web push subscription's row id, no personal data, and masking it would mangle
    # digits elsewhere in the text ("HTTP 410")
    return text.replace(message.to, mask(message.to)) if len(message.to) >= 6 else text


class Dispatcher:
    """One dispatch worker. Run several (processes or machines) against one Redis queue to scale out."""

    def __init__(
        self,
        queue: OutboundQueue,
        senders: Mapping[str, Sender],
        deliveries: DeliveryLog,
        limiter: RateLimiter | None = None,
        limits: Mapping[str, tuple[float | None, str]] | None = None,
        consumer: str | None = None,
        concurrency: int = 8,
        max_attempts: int = 6,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        visibility_ms: int = 30_000,
        *,
        block_ms: int = 1000,
        maintenance_s: float = 1.0,
        send_timeout_s: float | None = None,
        burst: float = 0.0,
        drain_s: float = 10.0,
        stats_log_s: float = 60.0,
    ) -> None:
        self.queue, self.senders, self.deliveries, self.limiter = queue, dict(senders), deliveries, limiter
        self.limits: dict[str, tuple[float | None, str]] = {}
        for channel, (rate, unit) in (limits or {}).items():
            unit = unit.rstrip("s")  # "messages" and "segments" read naturally too
            if unit not in UNITS:
                raise ValueError(f"rate unit for {channel!r} must be one of {UNITS}, not {unit!r}")
            self.limits[channel] = (rate, unit)
        if any(rate for rate, _ in self.limits.values()) and limiter is None:
            raise ValueError("limits need a limiter")
        self.consumer = consumer or default_consumer()
        self.concurrency, self.max_attempts = max(1, concurrency), max(1, max_attempts)
        self.backoff_base_s, self.backoff_max_s = backoff_base_s, backoff_max_s
        self.visibility_ms, self.block_ms, self.maintenance_s = visibility_ms, block_ms, maintenance_s
        # A send must end well before its entry could be reclaimed, and the ref claim must outlive the
        # send but lapse before a reclaimer of a crashed worker's entry comes looking.
        self.send_timeout_s = send_timeout_s if send_timeout_s is not None else visibility_ms / 3000
        self.claim_ttl_ms = int(self.send_timeout_s * 2000)
        self.burst, self.drain_s, self.stats_log_s = burst, drain_s, stats_log_s
        self._stats: Counter[str] = Counter()
        self._inflight: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask run() to return: it stops taking work, lets sends in flight finish (up to drain_s)."""
        self._stopping.set()

    async def run(self) -> None:
        """Dispatch until stop() (once per instance). Queue outages are logged and waited out, never raised."""
        loop = asyncio.get_running_loop()
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"dispatch-heartbeat-{self.consumer}")
        next_maintenance = next_stats_log = loop.time()
        last_logged: dict[str, int | str] = {}
        log.info("dispatcher %s started (concurrency %d)", self.consumer, self.concurrency)
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._tasks)
                if free <= 0:
                    await asyncio.wait(self._tasks, timeout=self.block_ms / 1000, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    batch: list[Delivery] = []
                    if loop.time() >= next_maintenance:
                        next_maintenance = loop.time() + self.maintenance_s
                        batch = await self._maintain(free)
                    if not batch:
                        # only as many as we can start now: what we do not take stays for other workers,
                        # and the next read again starts from emergency
                        batch = await self.queue.read(self.consumer, free, self.block_ms)
                except Exception as exc:
                    self._stats["errors"] += 1
                    log.warning("dispatcher %s: queue unavailable (%s: %s)", self.consumer, type(exc).__name__, exc)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), 1.0)
                    continue
                for delivery in batch:
                    self._start(delivery)
                if self.stats_log_s and loop.time() >= next_stats_log:
                    next_stats_log = loop.time() + self.stats_log_s
                    snapshot = self.stats()
                    if snapshot != last_logged:
                        log.info("dispatcher %s: %s", self.consumer, snapshot)
                        last_logged = snapshot
        finally:
            heartbeat.cancel()
            await self._drain()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            log.info("dispatcher %s stopped: %s", self.consumer, self.stats())

    async def _drain(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.drain_s)
        for task in list(self._tasks):
            # entries of cancelled sends stay pending in the queue: another worker reclaims them
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stats(self) -> dict[str, int | str]:
        """Counts since start, for logs and health checks (no addresses, no texts)."""
        return {"consumer": self.consumer, "in_flight": len(self._inflight), **{k: self._stats[k] for k in STATS}}

    async def _maintain(self, free: int) -> list[Delivery]:
        await self.queue.promote_due()
        reclaimed = await self.queue.reclaim(self.consumer, self.visibility_ms, free)
        fresh = [d for d in reclaimed if d.entry_id not in self._inflight]  # our own slow ones: still ours
        for delivery in fresh:
            self._stats["reclaimed"] += 1
            log.info(
                "reclaimed %s (%s, handed out %d times): its worker stopped before finishing",
                delivery.message.ref,
                delivery.priority,
                delivery.times_delivered,
            )
        return fresh

    async def _heartbeat(self) -> None:
        # Waiting for the rate limit can outlast visibility_ms during a big broadcast: keep what we hold.
        while True:
            await asyncio.sleep(self.visibility_ms / 3000)
            if self._inflight:
                try:
                    await self.queue.touch(self.consumer, list(self._inflight.values()))
                except Exception as exc:
                    log.warning("dispatcher %s: heartbeat failed (%s)", self.consumer, type(exc).__name__)

    def _start(self, delivery: Delivery) -> None:
        if delivery.entry_id in self._inflight:
            return
        self._inflight[delivery.entry_id] = delivery
        task = asyncio.create_task(self._process(delivery))
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            self._inflight.pop(delivery.entry_id, None)

        task.add_done_callback(done)

    # --- one delivery ---------------------------------------------------------------------------

    async def _process(self, delivery: Delivery) -> None:
        with trace.bound(delivery.message.trace_id or None):
            await self._guarded(delivery)

    async def _guarded(self, delivery: Delivery) -> None:
        try:
            await self._handle(delivery)
        except Exception as exc:
            # The delivery log or Redis failed around the send: put the message back without counting
            # an attempt. If even that fails, the entry stays pending and is reclaimed later.
            self._stats["errors"] += 1
            message = delivery.message
            log.warning(
                "could not handle %s (%s at %s: %s); putting it back",
                message.ref,
                type(exc).__name__,
                where(exc),
                _scrub(str(exc), message),
            )
            try:
                await self.queue.retry_later(delivery, self._backoff(1), attempt=message.attempt)
            except Exception as again:
                log.warning("could not put back %s (%s); it will be reclaimed", message.ref, type(again).__name__)

    async def _handle(self, delivery: Delivery) -> None:
        message = delivery.message
        rate_limited = bool(self.limits.get(message.channel, (None, ""))[0])
        # Before waiting for the rate limit, drop what is already done; without a limit the check after
        # the claim below is enough (it is one database read per message: bench/broadcast).
        if rate_limited and not await self.deliveries.should_send(message.ref):
            self._stats["skipped"] += 1
            await self.queue.ack(delivery)
            return
        await self._wait_for_rate(message)
        token = secrets.token_hex(8)
        if not await self.queue.claim_send(message.ref, token, self.claim_ttl_ms):
            # Another copy of this message is being sent right now: look again soon (the holder may also
            # have died mid-send, and then its claim lapses within claim_ttl_ms).
            self._stats["busy"] += 1
            await self.queue.retry_later(delivery, self.claim_ttl_ms / 4000, attempt=message.attempt)
            return
        try:
            # the other copy may have been sent while this one waited for the rate limit
            if not await self.deliveries.should_send(message.ref):
                self._stats["skipped"] += 1
                await self.queue.ack(delivery)
                return
            # failing is recording too: only what is still due (a sent broadcast recipient must not be
            # switched to an SMS fallback, a sent reply must not be marked failed)
            sender = self.senders.get(message.channel)
            if sender is None:
                await self._fail(delivery, "permanent", f"no sender for channel {message.channel!r}", None)
                return
            if delivery.times_delivered > self.max_attempts:
                # a message whose workers keep dying (a hanging provider call, a crash it triggers): stop
                await self._fail(
                    delivery, "permanent", f"handed out {delivery.times_delivered} times without an outcome", None
                )
                return
            await self._send(delivery, sender)
        finally:
            try:
                await self.queue.release_send(message.ref, token)
            except Exception as exc:  # the claim expires by itself
                log.debug("could not release the claim on %s (%s)", message.ref, type(exc).__name__)

    async def _wait_for_rate(self, message: Outgoing) -> None:
        rate, unit = self.limits.get(message.channel, (None, "message"))
        if rate and self.limiter is not None:
            cost = max(1, message.segments) if unit == "segment" else 1
            await self.limiter.acquire(f"send:{message.channel}", rate, cost, self.burst)

    async def _send(self, delivery: Delivery, sender: Sender) -> None:
        message = delivery.message
        try:
            with metrics.PROVIDER_REQUEST_DURATION.labels(message.channel).time():
                result = await asyncio.wait_for(sender.send(message), self.send_timeout_s)
        except SendError as exc:
            await self._on_error(delivery, exc.kind, exc.reason, exc.code, exc.retry_after_s)
            return
        except TimeoutError:
            # the provider may still have accepted it: one of the ways at-least-once can duplicate
            await self._on_error(delivery, "retry", f"no answer within {self.send_timeout_s:g} s", None, None)
            return
        except Exception as exc:
            # a sender bug or an unexpected library error: never lose the message over it
            log.warning(
                "sender %s raised %s at %s for %s: %s",
                message.channel,
                type(exc).__name__,
                where(exc),
                message.ref,
                _scrub(str(exc), message),
            )
            await self._on_error(delivery, "retry", f"{type(exc).__name__}: {exc}", None, None)
            return
        self._stats["sent"] += 1
        metrics.OUTBOUND_MESSAGES.labels(message.channel, "sent").inc()
        await self._record_sent(message, result)
        await self.queue.ack(delivery)
        # replies at INFO (one a turn); a broadcast's hundred thousand sends at DEBUG
        log.log(
            logging.INFO if message.priority == "reply" else logging.DEBUG,
            "sent %s via %s to %s (attempt %d, %s)",
            message.ref,
            message.channel,
            mask(message.to),
            message.attempt + 1,
            result.provider_id,
        )

    async def _record_sent(self, message: Outgoing, result: SendResult) -> None:
        # The provider has the message: sending it again would be worse than a missing record, so after
        # a few tries the entry is acked anyway and the gap is logged for an operator.
        for wait in (0.1, 0.5, None):
            try:
                await self.deliveries.sent(message.ref, result, message)
                return
            except Exception as exc:
                if wait is None:
                    self._stats["record_errors"] += 1
                    log.error(
                        "sent %s (provider id %s) but could not record it: %s: %s",
                        message.ref,
                        result.provider_id,
                        type(exc).__name__,
                        _scrub(str(exc), message),
                    )
                    return
                await asyncio.sleep(wait)

    async def _on_error(
        self, delivery: Delivery, kind: str, reason: str, code: str | None, retry_after_s: float | None
    ) -> None:
        message = delivery.message
        if kind in ("permanent", "opted_out", "window_closed"):
            await self._fail(delivery, kind, reason, code)
            return
        if kind != "retry":
            log.warning("%s: unknown send error kind %r, treated as retry", message.ref, kind)
        attempt = message.attempt + 1
        if attempt >= self.max_attempts:
            await self._fail(delivery, "permanent", f"gave up after {attempt} attempts: {reason}", code)
            return
        if retry_after_s is not None:
            delay = max(0.0, retry_after_s) * random.uniform(1.0, 1.1)  # the provider knows; spread the herd
        else:
            delay = self._backoff(attempt)
        if await self.queue.retry_later(delivery, delay):
            self._stats["retried"] += 1
            metrics.OUTBOUND_MESSAGES.labels(message.channel, "retried").inc()
            log.info(
                "%s: attempt %d via %s failed (%s), retrying in %.1f s",
                message.ref,
                attempt,
                message.channel,
                _scrub(reason, message),
                delay,
            )
            await self.deliveries.retrying(message.ref, attempt, reason, code, delay)

    def _backoff(self, attempt: int) -> float:
        # exponential with "equal jitter": never less than half the step, so retries do not bunch up
        step = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempt - 1))
        return step * random.uniform(0.5, 1.0)

    async def _fail(self, delivery: Delivery, kind: str, reason: str, code: str | None) -> None:
        """Final for this channel: the log's fallback goes in its place, else the failure is recorded."""
        message = delivery.message
        fallback = await self.deliveries.fallback(message, kind, reason)
        if fallback is not None:
            if await self.queue.replace(delivery, fallback):
                self._stats["fallbacks"] += 1
                metrics.OUTBOUND_MESSAGES.labels(message.channel, "fallback").inc()
                log.info("%s: %s via %s, falling back to %s", message.ref, kind, message.channel, fallback.channel)
            return
        await self.deliveries.failed(message.ref, kind, reason, code)
        await self.queue.ack(delivery)
        self._stats["failed"] += 1
        metrics.OUTBOUND_MESSAGES.labels(message.channel, "failed").inc()
        log.warning(
            "%s via %s failed: %s%s: %s",
            message.ref,
            message.channel,
            kind,
            f" (code {code})" if code else "",
            _scrub(reason, message),
        )
