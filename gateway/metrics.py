"""The gateway's Prometheus metrics: one family per thing an operator watches, units in the names,
labels of low cardinality only (channel, priority, status, reason: never a phone, an openid or an id).

Counters and histograms live in this process's default registry and move where things happen (the
inbound path, the bot bridge, the dispatcher, the ledger, the broadcast runner). What is a level rather
than an event — queue depth, the breaker's state, recipients of broadcasts now sending — is read when
Prometheus scrapes (`refresh`), from Redis and the database, so every gateway process reports the same
shared numbers and a worker process needs no view of its own.

Every process counts only what it did itself: scrape each gateway (`/metrics`) and sum by label in the
queries (deploy/grafana-dashboard.json does).
"""

from __future__ import annotations

from collections import Counter as TallyCounter
from collections.abc import Awaitable, Callable, Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

# Turns take tens of milliseconds with a warm Rasa and seconds when it is loaded; the bridge gives up at 10 s.
TURN_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PROVIDER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BREAKER_STATES = ("closed", "half-open", "open")

INBOUND_MESSAGES = Counter(
    "citygw_inbound_messages",
    "Citizens' messages taken in, first arrivals only (a provider's retry of the same message id is not counted).",
    ["channel"],
)
INBOUND_DUPLICATES = Counter(
    "citygw_inbound_duplicates",
    "Messages seen before (provider retries, browser resends), acknowledged and not answered again.",
    ["channel"],
)
TURNS = Counter(
    "citygw_turns",
    "Conversation turns by result: answered, declined / not_understood / suggested (the bot could not "
    "serve the question), responder (answered before the bot), bot_failed (Rasa away: 系统繁忙).",
    ["channel", "result"],
)
REFUSALS = Counter(
    "citygw_refusals",
    "Messages refused before a turn, by reason (empty, too_long, rate_limited, busy).",
    ["channel", "reason"],
)
TURN_DURATION = Histogram(
    "citygw_turn_duration_seconds",
    "Time from taking a message to its replies being recorded, bot included.",
    ["channel"],
    buckets=TURN_BUCKETS,
)
RASA_REQUEST_DURATION = Histogram(
    "citygw_rasa_request_duration_seconds",
    "One HTTP request to Rasa's REST webhook (each retry is a request).",
    buckets=TURN_BUCKETS,
)
RASA_FAILURES = Counter(
    "citygw_rasa_failures",
    "Turns Rasa could not answer, by reason (connect, timeout, http, invalid, circuit_open).",
    ["reason"],
)
BREAKER_STATE = Gauge(
    "citygw_breaker_state",
    "The circuit breaker in front of Rasa: 1 for its current state (closed, half-open, open), 0 for the others.",
    ["state"],
)
OUTBOUND_MESSAGES = Counter(
    "citygw_outbound_messages",
    "Outbound messages by outcome: queued (for the dispatcher), sent (accepted by the provider, or "
    "answered in the web chat request), retried, failed (for good), fallback (replaced by an SMS or template).",
    ["channel", "outcome"],
)
PROVIDER_REQUEST_DURATION = Histogram(
    "citygw_provider_request_duration_seconds",
    "One send to a provider (Twilio, WeChat, a push service), whatever its outcome.",
    ["channel"],
    buckets=PROVIDER_BUCKETS,
)
DELIVERY_REPORTS = Counter(
    "citygw_delivery_reports",
    "Providers' delivery reports (status callbacks) by reported status.",
    ["channel", "status"],
)
QUEUE_DEPTH = Gauge(
    "citygw_queue_depth",
    "Entries on the shared queues when scraped: ready (unread), pending (being handled), delayed (retries).",
    ["queue", "priority", "state"],
)
BROADCAST_RECIPIENTS = Gauge(
    "citygw_broadcast_recipients",
    "Recipients of the broadcasts and notices now sending, by delivery status, when scraped.",
    ["status"],
)
BROADCAST_RECIPIENTS_WRITTEN = Counter(
    "citygw_broadcast_recipients_written",
    "Recipient rows written by the fan-out (one per citizen of an audience) in this process.",
)
BROADCASTS_COMPLETED = Counter(
    "citygw_broadcasts_completed",
    "Broadcasts and school notices whose every recipient has an outcome, finished by this process.",
)

FAMILIES = (
    INBOUND_MESSAGES,
    INBOUND_DUPLICATES,
    TURNS,
    REFUSALS,
    TURN_DURATION,
    RASA_REQUEST_DURATION,
    RASA_FAILURES,
    BREAKER_STATE,
    OUTBOUND_MESSAGES,
    PROVIDER_REQUEST_DURATION,
    DELIVERY_REPORTS,
    QUEUE_DEPTH,
    BROADCAST_RECIPIENTS,
    BROADCAST_RECIPIENTS_WRITTEN,
    BROADCASTS_COMPLETED,
)


def family_names() -> set[str]:
    """The names of the families as scraped (counters' samples add _total, histograms' _bucket/_sum/_count)."""
    return {metric._name for metric in FAMILIES}


def count_queued(messages: Iterable[object]) -> None:
    """Outbound messages put on the queue (entries with a channel: not the inbox's turns); one counter
    update per channel, not per message, for a broadcast's batches."""
    channels = TallyCounter(getattr(m, "channel", None) for m in messages)
    for channel, n in channels.items():
        if isinstance(channel, str):
            OUTBOUND_MESSAGES.labels(channel, "queued").inc(n)


def set_breaker(state: str) -> None:
    for known in BREAKER_STATES:
        BREAKER_STATE.labels(known).set(1 if known == state else 0)


def set_queue_depth(queue: str, depth: Mapping[str, Mapping[str, int]]) -> None:
    for priority, states in depth.items():
        for state, count in states.items():
            QUEUE_DEPTH.labels(queue, priority, state).set(count)


def set_broadcast_recipients(counts: Mapping[str, int], known: Iterable[str]) -> None:
    for status in {*known, *counts}:
        BROADCAST_RECIPIENTS.labels(status).set(counts.get(status, 0))


Refresh = Callable[[], Awaitable[None]]
