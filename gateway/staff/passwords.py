"""Staff passwords: argon2id hashes (argon2-cffi), hashed and verified off the event loop in a
small pool of their own, rehashed when the parameters change."""

from __future__ import annotations

import asyncio
import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 takes any length; the cap keeps a login request from costing much

HASHER = PasswordHasher()
# argon2 is deliberately slow (about 0.2 s of CPU and 64 MiB per call here). A pool of its own, half
# the cores, keeps a burst of sign-ins from taking every core from citizens' turns and from taking the
# default executor's threads (DNS lookups, file reads); the rest wait their turn in its queue.
HASH_THREADS = max(1, (os.cpu_count() or 2) // 2)
_HASHING = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="argon2")
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
    return await asyncio.get_running_loop().run_in_executor(_HASHING, verify_password, stored, password)


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, hash_password, password)


@lru_cache
def common_passwords() -> frozenset[str]:
    lines = Path(__file__).with_name("common_passwords.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def password_problem(password: str, username: str = "") -> str | None:
    """The reason a new password is refused (Chinese), or None."""
    if len(password) < MIN_LENGTH:
        return f"密码至少需要{MIN_LENGTH}个字符。"
    if len(password) > MAX_LENGTH:
        return f"密码不能超过{MAX_LENGTH}个字符。"
    if not password.strip():
        return "密码不能全是空格。"
    lowered = password.lower()
    core = re.sub(r"((19|20)\d\d)?[!.@#]*$", "", lowered)  # "password2026!" is still "password"
    if lowered in common_passwords() or core in common_passwords() or len(set(lowered)) <= 2:
        return "这个密码太常见，很容易被猜中，请换一个。"
    if username and len(username) >= 3 and username.lower() in lowered:
        return "密码不能包含用户名。"
    return None
