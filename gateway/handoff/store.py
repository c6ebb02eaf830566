"""Handoff tickets in the database: the state of a handed-off conversation lives here and nowhere else,
so a gateway restart (or another gateway process) finds the citizen with the same agent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from common.clock import utcnow
from gateway.broadcast.quiet import city_now, in_quiet_hours, parse_window
from gateway.config import Settings
from gateway.db import conversations
from gateway.db.models import Handoff, HandoffEntry, StaffUser
from intents.runtime import city_tz

OPEN = ("waiting", "claimed")
AGENT_ROLES = ("agent", "admin")  # supervisors are admins: they may answer too
ONLINE_WINDOW = timedelta(minutes=2)  # an agent's inbox pings every 30 s while it is open
RATING_WINDOW = timedelta(days=1)  # a "5" a day after the close is no longer a rating


async def current(db: AsyncSession, channel: str, address: str) -> Handoff | None:
    """The open handoff of this address, or the last closed one still waiting for its rating."""
    row = (
        await db.exec(
            select(Handoff)
            .where(Handoff.channel == channel, Handoff.address == address)
            .where(col(Handoff.status).in_(OPEN) | col(Handoff.awaiting_rating))
            .order_by(col(Handoff.id).desc())
        )
    ).first()
    if row is not None and row.closed_at is not None and utcnow() - row.closed_at > RATING_WINDOW:
        return None
    return row


async def pending(db: AsyncSession) -> list[Handoff]:
    """Every ticket that still takes its citizen's next message: open, or closed and awaiting a rating."""
    since = utcnow() - RATING_WINDOW
    query = select(Handoff).where(
        col(Handoff.status).in_(OPEN) | (col(Handoff.awaiting_rating) & (col(Handoff.closed_at) >= since))
    )
    return list((await db.exec(query)).all())


async def open_handoff(db: AsyncSession, channel: str, address: str, reason: str) -> Handoff:
    """A new waiting ticket for this address's conversation (committed), numbered by day and id."""
    conversation = await conversations.open_conversation(db, channel, address)
    handoff = Handoff(
        conversation_id=conversation.id,
        citizen_id=conversation.citizen_id,
        channel=channel,
        address=address,
        reason=reason,
    )
    db.add(handoff)
    await db.flush()
    # The day's date then the id: unique (the id is) and readable aloud on the phone.
    handoff.number = f"{handoff.opened_at.astimezone(city_tz()):%y%m%d}{handoff.id:04d}"
    await db.commit()
    return handoff


async def claim(db: AsyncSession, handoff_id: int, agent_id: int) -> bool:
    """Take a waiting ticket: one conditional UPDATE, so of two agents claiming at once exactly one wins."""
    result = await db.exec(
        update(Handoff)
        .where(col(Handoff.id) == handoff_id, col(Handoff.status) == "waiting")
        .values(status="claimed", agent_id=agent_id, claimed_at=utcnow())
    )
    return bool(result.rowcount == 1)


def entry(
    db: AsyncSession, handoff: Handoff, kind: str, staff_id: int | None, text: str = "", message_id: int | None = None
) -> None:
    assert handoff.id is not None
    db.add(HandoffEntry(handoff_id=handoff.id, staff_id=staff_id, kind=kind, text=text, message_id=message_id))


@dataclass(frozen=True)
class Queue:
    waiting_ahead: int  # tickets opened before this one and still waiting
    agents_online: int


async def queue(db: AsyncSession, before_id: int | None = None) -> Queue:
    waiting = select(func.count()).select_from(Handoff).where(Handoff.status == "waiting")
    if before_id is not None:
        waiting = waiting.where(col(Handoff.id) < before_id)
    ahead = (await db.exec(waiting)).one()
    return Queue(int(ahead), await agents_online(db))


async def agents_online(db: AsyncSession) -> int:
    query = (
        select(func.count())
        .select_from(StaffUser)
        .where(col(StaffUser.role).in_(AGENT_ROLES), col(StaffUser.active))
        .where(col(StaffUser.last_seen_at) >= utcnow() - ONLINE_WINDOW)
    )
    return int((await db.exec(query)).one())


def answering(settings: Settings) -> bool:
    """Within the agents' hours, by the city's clock (the window arithmetic of quiet hours)."""
    return in_quiet_hours(settings.handoff_hours, city_now(settings))


def next_opening(settings: Settings) -> str:
    """ "今天10:00" or "明天10:00": when someone will answer, in the citizen's words (Beijing time)."""
    opens = hours(settings)[0]
    return f"{'今天' if city_now(settings).time() < opens else '明天'}{opens:%H:%M}"


def hours(settings: Settings) -> tuple[time, time]:
    window = parse_window(settings.handoff_hours)
    if window is None:
        raise ValueError("handoff_hours must look like 10:00-19:30")
    return window
