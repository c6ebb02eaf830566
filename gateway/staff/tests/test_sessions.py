"""Sign-in, the session cookie, expiry, logout, throttling, disabled accounts and password hashing."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time

from argon2 import PasswordHasher

from gateway.staff.auth import LOGIN_ATTEMPTS, LOGIN_WINDOW_S, secure_request
from gateway.staff.passwords import HASHER, hash_password, needs_rehash, verify_password
from gateway.staff.tests.conftest import PASSWORD, StaffGateway, running

CJK = re.compile(r"[\u4e00-\u9fff]")


def set_cookie_header(reply) -> str:
    return next(v for k, v in reply.headers.items() if k.lower() == "set-cookie" and v.startswith("citygw_staff="))


async def test_login_sets_a_strict_httponly_cookie_and_stores_only_its_hash(gw: StaffGateway) -> None:
    client = gw.client()
    reply = await client.login("viewer")
    assert reply.status == 200
    staff = reply.body["staff"]
    assert (staff["username"], staff["role"], staff["school_id"], staff["display_name"]) == (
        "viewer",
        "viewer",
        None,
        "viewer名",
    )
    assert "password_hash" not in staff
    header = set_cookie_header(reply)
    attributes = {a.strip().split("=")[0].lower() for a in header.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= attributes
    assert "SameSite=Strict" in header and "Path=/" in header and "Max-Age=28800" in header
    assert "secure" not in attributes  # plain http here
    token = client.cookie()
    assert token and len(token) >= 43  # 32 random bytes, URL-safe base64
    rows = gw.query("SELECT * FROM staffsession WHERE staff_id = ?", gw.staff_id("viewer"))
    hashes = {r["token_hash"] for r in rows}
    assert hashlib.sha256(token.encode()).hexdigest() in hashes
    assert all(token not in str(value) for row in rows for value in row.values())
    me = await client.get("/api/staff/me")
    assert me.status == 200
    assert me.body == {
        "id": gw.staff_id("viewer"),
        "username": "viewer",
        "display_name": "viewer名",
        "role": "viewer",
        "school_id": None,
        "csrf_token": reply.body["csrf_token"],
    }
    assert me.headers["Cache-Control"] == "no-store"


async def test_cookie_is_secure_when_the_public_url_is_https(city_template, tmp_path) -> None:
    async with running(city_template, tmp_path, public_base_url="https://city.example") as gw:
        reply = await gw.client().login("viewer")
        assert reply.status == 200
        assert "Secure" in set_cookie_header(reply)


def test_secure_request_follows_the_scheme_or_the_public_url() -> None:
    from aiohttp.test_utils import make_mocked_request

    plain = make_mocked_request("GET", "/")
    assert not secure_request(plain, None)
    assert not secure_request(plain, "http://city.example")
    assert secure_request(plain, "https://city.example")
    assert secure_request(plain.clone(scheme="https"), None)


async def test_logout_ends_the_session(gw: StaffGateway) -> None:
    client = await gw.signed_in("approver")
    token_hash = hashlib.sha256(client.cookie().encode()).hexdigest()
    reply = await client.post("/api/staff/logout")
    assert reply.status == 204 and reply.body is None
    header = set_cookie_header(reply)
    assert "Max-Age=0" in header and "SameSite=Strict" in header
    assert gw.query("SELECT * FROM staffsession WHERE token_hash = ?", token_hash) == []
    assert (await client.get("/api/staff/me")).status == 401
    entry = gw.audit("logout")[-1]
    assert (entry["staff_id"], entry["target"], entry["ip"]) == (gw.staff_id("approver"), "approver", "127.0.0.1")


async def test_a_stolen_cookie_is_useless_after_logout(gw: StaffGateway) -> None:
    client = await gw.signed_in("approver")
    thief = gw.client()
    thief.http.cookie_jar.update_cookies({"citygw_staff": client.cookie()}, thief.base)
    assert (await thief.get("/api/staff/me")).status == 200
    assert (await client.post("/api/staff/logout")).status == 204
    reply = await thief.get("/api/staff/me")
    assert (reply.status, reply.body["code"]) == (401, "unauthenticated")


async def test_expired_session_is_refused_and_removed(gw: StaffGateway) -> None:
    client = await gw.signed_in("viewer")
    token_hash = hashlib.sha256(client.cookie().encode()).hexdigest()
    gw.execute("UPDATE staffsession SET expires_at = '2020-01-01 00:00:00.000000' WHERE token_hash = ?", token_hash)
    reply = await client.get("/api/staff/me")
    assert (reply.status, reply.body["code"]) == (401, "unauthenticated")
    assert "过期" in reply.body["error"]
    assert gw.query("SELECT * FROM staffsession WHERE token_hash = ?", token_hash) == []


async def test_session_lasts_eight_hours(gw: StaffGateway) -> None:
    client = await gw.signed_in("viewer")
    token_hash = hashlib.sha256(client.cookie().encode()).hexdigest()
    (row,) = gw.query("SELECT created_at, expires_at FROM staffsession WHERE token_hash = ?", token_hash)
    from datetime import datetime

    created, expires = (datetime.fromisoformat(row[k]) for k in ("created_at", "expires_at"))
    assert (expires - created).total_seconds() == 8 * 3600


async def test_signing_in_again_replaces_the_browsers_session(gw: StaffGateway) -> None:
    client = await gw.signed_in("viewer")
    first = hashlib.sha256(client.cookie().encode()).hexdigest()
    assert (await client.login("viewer")).status == 200
    assert gw.query("SELECT * FROM staffsession WHERE token_hash = ?", first) == []
    assert client.cookie() and hashlib.sha256(client.cookie().encode()).hexdigest() != first


async def test_wrong_password_and_unknown_user_look_alike_and_are_audited(gw: StaffGateway) -> None:
    wrong = await gw.client().login("approver", "not the password")
    unknown = await gw.client().login("nobody-here", "not the password")
    for reply in (wrong, unknown):
        assert reply.status == 401
        assert reply.body == {"error": "用户名或密码错误。", "code": "login_failed"}
        assert "set-cookie" not in {k.lower() for k in reply.headers}
    failed = gw.audit("login_failed")[-2:]
    assert [(e["staff_id"], e["target"]) for e in failed] == [
        (gw.staff_id("approver"), "approver"),
        (None, "nobody-here"),
    ]
    assert all('"bad_credentials"' in e["detail"] and e["ip"] == "127.0.0.1" for e in failed)


async def test_login_is_audited(gw: StaffGateway) -> None:
    await gw.signed_in("teacher2")
    entry = gw.audit("login")[-1]
    assert (entry["staff_id"], entry["target"], entry["ip"]) == (gw.staff_id("teacher2"), "teacher2", "127.0.0.1")


async def test_login_body_is_validated(gw: StaffGateway) -> None:
    client = gw.client()
    reply = await client.post("/api/staff/login", {"username": "admin"})
    assert (reply.status, reply.body["code"], reply.body["field"]) == (400, "invalid", "password")
    assert CJK.search(reply.body["error"]) and "password" in reply.body["error"]
    reply = await client.post("/api/staff/login", {"username": "admin", "password": PASSWORD, "remember": True})
    assert (reply.status, reply.body["field"]) == (400, "remember")
    reply = await client.post("/api/staff/login", {"username": 7, "password": PASSWORD})
    assert (reply.status, reply.body["field"]) == (400, "username")
    reply = await client.post("/api/staff/login", data=b"{not json", headers={"Content-Type": "application/json"})
    assert (reply.status, reply.body["code"]) == (400, "json")
    reply = await client.post("/api/staff/login", data=b"[]", headers={"Content-Type": "application/json"})
    assert (reply.status, reply.body["code"]) == (400, "json")
    surrogate = b'{"username": "\\ud800", "password": "x"}'
    reply = await client.post("/api/staff/login", data=surrogate, headers={"Content-Type": "application/json"})
    assert (reply.status, reply.body["code"]) == (400, "json")
    # A cross-site HTML form can only send form encodings: refused before anything else.
    reply = await client.post("/api/staff/login", data={"username": "admin", "password": PASSWORD})
    assert (reply.status, reply.body["code"]) == (415, "content_type")


async def test_oversized_body_is_413_json(clients, gw: StaffGateway) -> None:
    big = {
        "kind": "notice",
        "title": "t",
        "body": "长" * 40_000,
        "audience": {"type": "all"},
        "idempotency_key": "k" * 10,
    }
    reply = await clients["sender"].post("/api/staff/broadcasts", big)
    assert reply.status == 413
    assert reply.body["code"] == "too_large" and CJK.search(reply.body["error"])
    reply = await clients["sender"].post(
        "/api/staff/broadcasts/upload", data=b"13900000000\n" * 6000, headers={"Content-Type": "text/plain"}
    )
    assert (reply.status, reply.body["code"]) == (413, "too_large")


async def wait_clear_of_window_boundary() -> None:
    """The throttle counts in fixed windows: do not straddle one."""
    remaining = LOGIN_WINDOW_S - time.time() % LOGIN_WINDOW_S
    if remaining < 5:
        await asyncio.sleep(remaining + 0.1)


async def test_login_attempts_are_throttled_per_username_and_address(fresh_gw: StaffGateway) -> None:
    gw = fresh_gw
    await wait_clear_of_window_boundary()
    client = gw.client()
    for _ in range(LOGIN_ATTEMPTS):
        assert (await client.login("sender", "wrong password")).status == 401
    reply = await client.login("sender")  # even the right password, now
    assert reply.status == 429
    assert reply.body["code"] == "throttled" and "分钟后再试" in reply.body["error"]
    assert int(reply.headers["Retry-After"]) > 0
    # Another account from the same address is not locked out by it.
    assert (await gw.client().login("viewer")).status == 200
    entry = gw.audit("login_failed")[-1]
    assert entry["target"] == "sender" and '"throttled"' in entry["detail"]


async def test_disabled_account_cannot_sign_in_and_loses_its_sessions(fresh_gw: StaffGateway) -> None:
    gw = fresh_gw
    admin = await gw.signed_in("admin")
    victim = await gw.signed_in("viewer")
    reply = await admin.post(f"/api/staff/users/{gw.staff_id('viewer')}/disable")
    assert reply.status == 200 and reply.body["user"]["active"] is False
    assert (await victim.get("/api/staff/me")).status == 401
    reply = await gw.client().login("viewer")
    assert (reply.status, reply.body["code"]) == (403, "disabled")
    assert '"disabled"' in gw.audit("login_failed")[-1]["detail"]
    assert gw.query("SELECT * FROM staffsession WHERE staff_id = ?", gw.staff_id("viewer")) == []


def test_passwords_are_argon2_hashes_never_the_plaintext() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert stored != hash_password(PASSWORD)  # salted
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, PASSWORD + "x")
    assert not verify_password(None, PASSWORD)
    assert not verify_password("not a hash", PASSWORD)


async def test_stored_hashes_in_the_database_are_argon2(gw: StaffGateway) -> None:
    rows = gw.query("SELECT username, password_hash FROM staffuser")
    assert rows and all(r["password_hash"].startswith("$argon2id$") for r in rows)
    assert all(PASSWORD not in r["password_hash"] for r in rows)


async def test_weaker_hash_is_upgraded_at_sign_in(fresh_gw: StaffGateway) -> None:
    gw = fresh_gw
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    gw.execute("UPDATE staffuser SET password_hash = ? WHERE username = 'approver'", weak)
    assert (await gw.client().login("approver")).status == 200
    (row,) = gw.query("SELECT password_hash FROM staffuser WHERE username = 'approver'")
    assert row["password_hash"] != weak and not HASHER.check_needs_rehash(row["password_hash"])
    assert (await gw.client().login("approver")).status == 200  # and the new hash works
