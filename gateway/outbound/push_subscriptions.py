"""The gateway's side of web push: subscriptions kept in SQL (channels/webpush's Registrar and
SubscriptionStore), and the VAPID key the demo makes for itself.

A subscription belongs to the citizen of the web chat session that made it; subscribing makes web push
the citizen's preferred channel for notices. Outgoing.to of a web push message is the subscription's
row id: the broadcast's recipient row and the queue never hold the endpoint or the keys."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.webchat.wire import CHANNEL as WEBCHAT
from channels.webpush.sender import CHANNEL
from channels.webpush.subscription import PushSubscription
from channels.webpush.vapid import generate_private_key_pem
from gateway.db.engine import dialect_insert, select_rows
from gateway.db.models import ChannelIdentity, Citizen, WebPushSubscription, utcnow

log = logging.getLogger(__name__)

OUTCOME_COLUMN = {"sent": "last_success_at", "failed": "last_failure_at"}


class SqlPushSubscriptions:
    """Keeps subscriptions for the subscription endpoint (subscribe) and the sender (find, record)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def subscribe(self, session: str, subscription: PushSubscription) -> bool:
        async with self.sessions() as db:
            citizen_id = (
                await select_rows(
                    db,
                    select(col(ChannelIdentity.citizen_id)).where(
                        col(ChannelIdentity.channel) == WEBCHAT, col(ChannelIdentity.address) == session
                    ),
                )
            ).scalar()
            if citizen_id is None:
                return False
            # The same browser subscribing again (another session, new keys, after a 410) keeps one row.
            values = {
                "citizen_id": citizen_id,
                "p256dh": subscription.p256dh,
                "auth": subscription.auth,
                "gone_at": None,
                "last_failure_at": None,
            }
            await db.exec(
                dialect_insert(db, WebPushSubscription)
                .values(endpoint=subscription.endpoint, created_at=utcnow(), **values)
                .on_conflict_do_update(index_elements=["endpoint"], set_=values)
            )
            await db.exec(update(Citizen).where(col(Citizen.id) == citizen_id).values(preferred_channel=CHANNEL))
            await db.commit()
        return True

    async def find(self, key: str) -> PushSubscription | None:
        if not key.isdigit():
            return None
        async with self.sessions() as db:
            row = (
                await select_rows(
                    db,
                    select(
                        col(WebPushSubscription.endpoint),
                        col(WebPushSubscription.p256dh),
                        col(WebPushSubscription.auth),
                    ).where(col(WebPushSubscription.id) == int(key), col(WebPushSubscription.gone_at).is_(None)),
                )
            ).first()
        return PushSubscription(*row) if row is not None else None

    async def record(self, key: str, outcome: str) -> None:
        if not key.isdigit():
            return
        now = utcnow()
        values = {"gone_at": now, "last_failure_at": now} if outcome == "gone" else {OUTCOME_COLUMN[outcome]: now}
        async with self.sessions() as db:
            await db.exec(update(WebPushSubscription).where(col(WebPushSubscription.id) == int(key)).values(**values))
            await db.commit()
        if outcome == "gone":
            log.info("push subscription %s is gone: not used again", key)


def ensure_vapid_key(path: Path) -> str:
    """The PEM private key kept at path, made on first use (readable by this user only)."""
    if path.exists():
        return path.read_text()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = generate_private_key_pem()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(pem)
    log.info("made a VAPID key for web push at %s", path)
    return pem
