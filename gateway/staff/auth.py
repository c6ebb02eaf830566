"""Staff sign-in: sessions, the session cookie, CSRF tokens, role checks and login throttling.

The cookie `citygw_staff` carries a random 32-byte token; the database keeps only its SHA-256
(StaffSession.token_hash), so a leaked table cannot be replayed. Each session has its own CSRF token,
returned at login and by /me, which every state-changing request must echo in X-CSRF-Token. The
cookie is SameSite=Strict as well: two independent defences against cross-site requests.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Iterable
from datetime import timedelta

from aiohttp import web
from sqlalchemy import delete
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from common.addresses import client_address as client_address  # re-exported: the staff API reads it here
from common.addresses import subscriber
from gateway.db.engine import saved_id
from gateway.db.models import StaffSession, StaffUser, utcnow
from gateway.staff.accounts import ROLE_NAMES
from gateway.staff.errors import ApiError, forbidden, unauthenticated
from gateway.state import StateStore, WindowHit

COOKIE = "citygw_staff"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL = timedelta(hours=8)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Every attempt counts, counted atomically before the password is checked: parallel guesses cannot
# slip past the limit, which is why successful sign-ins count too (10 is plenty for a person).
LOGIN_ATTEMPTS = 10  # per username and IP address…
LOGIN_WINDOW_S = 300  # …in each 5-minute window
THROTTLED = "登录尝试过于频繁，请{minutes}分钟后再试。"
# Across all usernames, one client address gets this many failed sign-ins in any 10 minutes: one
# password tried against every account is stopped too. Each attempt is counted before the password
# is checked (parallel guesses cannot slip past) and withdrawn when it succeeds, so an office of staff
# behind one address is not locked out by its own sign-ins.
ADDRESS_FAILURES = 30
ADDRESS_WINDOW_S = 600
ADDRESS_THROTTLED = "来自您所在网络地址的登录失败次数过多，请{minutes}分钟后再试。"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(db: AsyncSession, staff: StaffUser, ip: str | None) -> tuple[str, StaffSession]:
    """A new session for staff; returns the cookie token (never stored) and the row."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    # Sign-ins accumulate rows: drop this user's expired ones while we are here.
    await db.exec(
        delete(StaffSession).where(col(StaffSession.staff_id) == staff.id, col(StaffSession.expires_at) <= now)
    )
    session = StaffSession(
        token_hash=token_hash(token),
        staff_id=saved_id(staff),
        csrf_token=secrets.token_urlsafe(32),
        ip=ip,
        created_at=now,
        expires_at=now + SESSION_TTL,
    )
    db.add(session)
    return token, session


async def find_session(db: AsyncSession, request: web.Request) -> tuple[StaffSession, StaffUser] | None:
    """The live session the request's cookie names, with its (active) staff member."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        return None
    session = await db.get(StaffSession, token_hash(token))
    if session is None:
        return None
    if session.expires_at <= utcnow():
        await db.delete(session)
        await db.commit()
        return None
    staff = await db.get(StaffUser, session.staff_id)
    if staff is None or not staff.active:
        return None
    return session, staff


async def authenticate(db: AsyncSession, request: web.Request) -> tuple[StaffSession, StaffUser]:
    found = await find_session(db, request)
    if found is None:
        if request.cookies.get(COOKIE):
            raise unauthenticated("登录已过期或已退出，请重新登录。")
        raise unauthenticated()
    return found


def check_csrf(request: web.Request, session: StaffSession) -> None:
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise ApiError(403, "csrf", "缺少或错误的安全令牌（X-CSRF-Token），请刷新页面后重试。")


def check_role(staff: StaffUser, roles: Iterable[str]) -> None:
    if staff.role not in roles:
        raise forbidden(f"您的角色（{ROLE_NAMES.get(staff.role, staff.role)}）无权执行此操作。")


def check_school(staff: StaffUser, school_id: str | None) -> None:
    """School staff act only for their own school; everyone else was already checked by role."""
    if staff.role == "school" and staff.school_id != school_id:
        raise forbidden("学校教职工只能查看和操作本校的通知。")


def _address_key(ip: str | None) -> str:
    return f"staff-login-address:{subscriber(ip)}"


async def throttle_address(state: StateStore, ip: str | None) -> WindowHit:
    """Count a sign-in attempt from this address; refuse (429) past ADDRESS_FAILURES in the window.
    Returns the hit, which forget_success withdraws when the sign-in succeeds."""
    key = _address_key(ip)
    hit = await state.hit_sliding(key, ADDRESS_WINDOW_S)
    if hit.count > ADDRESS_FAILURES:
        await state.forget(key, hit.id)  # a refused attempt is not another failure: it never ran
        wait_s = max(1, math.ceil(hit.oldest_expires_in_s))
        raise ApiError(
            429,
            "throttled",
            ADDRESS_THROTTLED.format(minutes=math.ceil(wait_s / 60)),
            headers={"Retry-After": str(wait_s)},
        )
    return hit


async def forget_success(state: StateStore, ip: str | None, hit: WindowHit) -> None:
    await state.forget(_address_key(ip), hit.id)


async def throttle_login(state: StateStore, username: str, ip: str | None) -> None:
    """Count this attempt; refuse (429) past LOGIN_ATTEMPTS in the window."""
    count = await state.hit(f"staff-login:{username.lower()}:{ip or '-'}", LOGIN_WINDOW_S)
    if count > LOGIN_ATTEMPTS:
        raise ApiError(
            429,
            "throttled",
            THROTTLED.format(minutes=LOGIN_WINDOW_S // 60),
            headers={"Retry-After": str(LOGIN_WINDOW_S)},
        )


def secure_request(request: web.Request, public_base_url: str | None) -> bool:
    # Behind a TLS-terminating proxy the request itself is http: the configured public URL tells.
    return request.secure or (public_base_url or "").startswith("https://")


def set_cookie(response: web.StreamResponse, token: str, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def clear_cookie(response: web.StreamResponse, secure: bool) -> None:
    response.del_cookie(COOKIE, path="/", httponly=True, samesite="Strict", secure=secure)
