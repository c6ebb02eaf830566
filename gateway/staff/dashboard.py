"""The console's dashboard figures over a date range (city-local days): citizens' messages by channel per
day, and delivery per channel. Each figure is a table (JSON and CSV) and a chart (charts.py)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.db.models import Broadcast, BroadcastRecipient, Message
from intents.runtime import city_tz

MAX_DAYS = 92  # a quarter: a longer range would make a day's bar thinner than a pixel
DEFAULT_DAYS = 14
# Outcomes of a message that left the gateway; "queued" has not left yet and counts nowhere.
LEFT = ("sent", "delivered", "undelivered", "failed")
# Web chat replies go out in the request itself: they have no delivery report to count.
NO_REPORTS = ("webchat",)
CHANNEL_NAMES = {"sms": "短信", "wechat": "微信", "webchat": "网页聊天", "webpush": "网页推送"}


@dataclass(frozen=True)
class Span:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]

    def utc_bounds(self) -> tuple[datetime, datetime]:
        tz = city_tz()
        first = datetime.combine(self.start, time.min, tz).astimezone(UTC)
        after = datetime.combine(self.end + timedelta(days=1), time.min, tz).astimezone(UTC)
        return first, after


def span(start: date | None, end: date | None, today: date) -> Span | str:
    """The range asked for (default: the last DEFAULT_DAYS days), or why it cannot be shown."""
    end = end or today
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        return "开始日期不能晚于结束日期。"
    if (end - start).days + 1 > MAX_DAYS:
        return f"时间范围最长{MAX_DAYS}天，请缩短后再查。"
    return Span(start, end)


@dataclass(frozen=True)
class Daily:
    days: list[date]
    channels: list[str]
    counts: dict[tuple[date, str], int]

    def series(self) -> dict[str, list[int]]:
        return {c: [self.counts.get((d, c), 0) for d in self.days] for c in self.channels}


async def messages_by_day(db: AsyncSession, within: Span) -> Daily:
    """Citizens' messages (inbound) by channel per city-local day."""
    first, after = within.utc_bounds()
    rows = await db.exec(
        select(Message.created_at, Message.channel).where(
            col(Message.direction) == "in", col(Message.created_at) >= first, col(Message.created_at) < after
        )
    )
    tz = city_tz()
    counts: Counter[tuple[date, str]] = Counter()
    for created_at, channel in rows.all():
        when = created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC)
        counts[(when.astimezone(tz).date(), channel)] += 1
    channels = sorted({c for _, c in counts})
    return Daily(within.days, channels, dict(counts))


@dataclass(frozen=True)
class Delivery:
    channel: str
    sent: int  # left the gateway: sent, delivered, undelivered or failed
    delivered: int
    failed: int  # undelivered or failed

    @property
    def rate(self) -> float | None:
        return self.delivered / self.sent if self.sent else None


async def delivery_by_channel(db: AsyncSession, within: Span) -> list[Delivery]:
    """Replies and notices by channel: how many left the gateway, were reported delivered, or failed.
    Replies count by when they were written, broadcast recipients by when their broadcast was made."""
    first, after = within.utc_bounds()
    tally: Counter[tuple[str, str]] = Counter()
    replies = await db.exec(
        select(Message.channel, Message.status, func.count())
        .where(
            col(Message.direction) == "out",
            col(Message.created_at) >= first,
            col(Message.created_at) < after,
            col(Message.status).in_(LEFT),
            col(Message.channel).not_in(NO_REPORTS),
        )
        .group_by(col(Message.channel), col(Message.status))
    )
    r = BroadcastRecipient
    notices = await db.exec(
        select(r.channel, r.status, func.count())
        .join(Broadcast, col(Broadcast.id) == col(r.broadcast_id))
        .where(col(Broadcast.created_at) >= first, col(Broadcast.created_at) < after, col(r.status).in_(LEFT))
        .group_by(col(r.channel), col(r.status))
    )
    for channel, status, n in [*replies.all(), *notices.all()]:
        tally[(channel, status)] += int(n)
    channels = sorted({c for c, _ in tally})
    return [
        Delivery(
            channel,
            sent=sum(tally[(channel, s)] for s in LEFT),
            delivered=tally[(channel, "delivered")],
            failed=tally[(channel, "undelivered")] + tally[(channel, "failed")],
        )
        for channel in channels
    ]


def _csv(header: list[str], rows: list[list[object]]) -> str:
    out = io.StringIO()
    # A byte-order mark: Excel on a Chinese Windows reads the file as UTF-8 only with it.
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def messages_csv(daily: Daily, names: dict[str, str]) -> str:
    header = ["日期", *(names.get(c, c) for c in daily.channels), "合计"]
    rows: list[list[object]] = []
    for d in daily.days:
        counts = [daily.counts.get((d, c), 0) for c in daily.channels]
        rows.append([d.isoformat(), *counts, sum(counts)])
    return _csv(header, rows)


def delivery_csv(rows: list[Delivery], names: dict[str, str]) -> str:
    return _csv(
        ["渠道", "已发出", "已送达", "失败", "送达率"],
        [
            [names.get(d.channel, d.channel), d.sent, d.delivered, d.failed, "" if d.rate is None else f"{d.rate:.1%}"]
            for d in rows
        ],
    )
