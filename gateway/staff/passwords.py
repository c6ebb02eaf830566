"""Staff passwords: argon2id hashes (argon2-cffi), verified off the event loop, rehashed when the
parameters change."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 256  # argon2 takes any length; the cap keeps a login request from costing much

HASHER = PasswordHasher()
# Verified when the username is unknown, so that an unknown user takes as long as a wrong password.
_DUMMY_HASH = HASHER.hash("citygw-no-such-user")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when password matches stored; a missing or corrupt hash is a mismatch."""
    try:
        return HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return HASHER.check_needs_rehash(stored)
    except InvalidHashError:
        return True


async def verify_password_async(stored: str | None, password: str) -> bool:
    # argon2 is deliberately slow (tens of ms, 64 MiB): keep it off the event loop.
    return await asyncio.to_thread(verify_password, stored, password)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


def password_problem(password: str) -> str | None:
    """The reason a new password is refused (Chinese), or None."""
    if len(password) < MIN_LENGTH:
        return f"密码至少需要{MIN_LENGTH}个字符。"
    if len(password) > MAX_LENGTH:
        return f"密码不能超过{MAX_LENGTH}个字符。"
    if not password.strip():
        return "密码不能全是空格。"
    return None
