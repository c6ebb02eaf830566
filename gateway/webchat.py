"""What the web chat channel needs from the gateway: the secret its session ids are signed with, and when
a session was last used (its idle lifetime counts from then)."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.webchat.sessions import SessionIds
from channels.webchat.wire import CHANNEL
from gateway.config import REPO_ROOT, Settings
from gateway.db.models import ChannelIdentity

log = logging.getLogger(__name__)

SECRET_FILE = REPO_ROOT / "var" / "webchat-session.key"


def session_ids(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> SessionIds:
    async def last_active(session: str) -> datetime | None:
        async with sessions() as db:
            query = select(ChannelIdentity.last_seen_at).where(
                ChannelIdentity.channel == CHANNEL, ChannelIdentity.address == session
            )
            seen = (await db.exec(query)).first()
        return seen.replace(tzinfo=seen.tzinfo or UTC) if seen else None

    secret = settings.webchat_session_secret or ensure_secret(SECRET_FILE)
    return SessionIds(secret.encode(), last_active)


def ensure_secret(path: Path) -> str:
    """The secret kept at path, made on first use (readable by this user only): sessions stay valid across
    restarts of one machine's gateways. Several machines share CITYGW_WEBCHAT_SESSION_SECRET instead."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another gateway process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secret)
    log.info("made a web chat session secret at %s", path)
    return secret
