"""Web chat session ids that only the server can mint: a random part and the time it was issued, signed
with the server's secret (HMAC-SHA256). A session id is the citizen's only credential on web chat, and
the unit per-session limits count in; one a client made up, or one idle past its lifetime, is refused.

The id is URL-safe base64 of 12 random bytes + 4 bytes of issue time (Unix seconds) + 14 bytes of MAC:
40 characters, inside the id pattern the page and the push subscriptions already accept."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from enum import Enum

RANDOM, ISSUED, MAC = 12, 4, 14
IDLE_LIFETIME = timedelta(days=30)

LastActive = Callable[[str], Awaitable[datetime | None]]


class Standing(Enum):
    VALID = "valid"
    UNKNOWN = "unknown"  # not minted by this server (made up, or signed with another secret)
    EXPIRED = "expired"  # minted here, unused for longer than the idle lifetime


class SessionIds:
    def __init__(
        self,
        secret: bytes,
        last_active: LastActive,
        idle: timedelta = IDLE_LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the web chat session secret must be at least 16 bytes")
        self._secret, self._last_active, self._idle, self._clock = secret, last_active, idle, clock

    def mint(self) -> str:
        body = secrets.token_bytes(RANDOM) + int(self._clock()).to_bytes(ISSUED, "big")
        return base64.urlsafe_b64encode(body + self._mac(body)).decode()

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, b"webchat-session:" + body, hashlib.sha256).digest()[:MAC]

    def issued_at(self, session: str) -> datetime | None:
        """When the server minted this id; None when it did not."""
        try:
            raw = base64.urlsafe_b64decode(session.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        if len(raw) != RANDOM + ISSUED + MAC or base64.urlsafe_b64encode(raw).decode() != session:
            return None
        body, mac = raw[: RANDOM + ISSUED], raw[RANDOM + ISSUED :]
        if not hmac.compare_digest(mac, self._mac(body)):
            return None
        return datetime.fromtimestamp(int.from_bytes(body[RANDOM:], "big"), UTC)

    async def standing(self, session: str) -> Standing:
        issued = self.issued_at(session)
        if issued is None:
            return Standing.UNKNOWN
        last = await self._last_active(session) or issued
        if datetime.fromtimestamp(self._clock(), UTC) - last > self._idle:
            return Standing.EXPIRED
        return Standing.VALID

    def client_key(self, address: str) -> str:
        """The client's network address as a key for per-address limits, pseudonymous (what reaches the
        state store and the bot's metadata is not the address itself) and stable across processes."""
        return hmac.new(self._secret, b"webchat-client:" + address.encode(), hashlib.sha256).hexdigest()[:24]
