"""Every staff endpoint × (no session → 401, wrong role → 403, missing or wrong CSRF token → 403).

ENDPOINTS is written out by hand from the SPEC's role matrix, not derived from the code under test;
test_table_covers_every_route makes sure no route registered under /api/staff escapes the table.
"""

from __future__ import annotations

import re

import pytest
from yarl import URL

from gateway.staff.tests.conftest import ROLE_USER, StaffClient, StaffGateway, routed_paths

ALL = {"admin", "broadcaster", "approver", "school", "viewer", "agent"}
AGENTS = {"admin", "agent"}  # supervisors are admins
CITY = {"admin", "broadcaster", "approver", "viewer"}
SEND = {"admin", "broadcaster"}

# (method, path as requested, path as routed, roles allowed)
ENDPOINTS = [
    ("POST", "/api/staff/logout", "/api/staff/logout", ALL),
    ("GET", "/api/staff/me", "/api/staff/me", ALL),
    ("GET", "/api/staff/users", "/api/staff/users", {"admin"}),
    ("POST", "/api/staff/users", "/api/staff/users", {"admin"}),
    ("POST", "/api/staff/users/1/disable", "/api/staff/users/{id}/disable", {"admin"}),
    ("GET", "/api/staff/audit", "/api/staff/audit", {"admin"}),
    ("GET", "/api/staff/areas", "/api/staff/areas", ALL),
    ("POST", "/api/staff/broadcasts/preview", "/api/staff/broadcasts/preview", SEND),
    ("POST", "/api/staff/broadcasts/upload", "/api/staff/broadcasts/upload", SEND),
    ("POST", "/api/staff/broadcasts", "/api/staff/broadcasts", SEND),
    ("GET", "/api/staff/broadcasts", "/api/staff/broadcasts", CITY),
    ("GET", "/api/staff/broadcasts/1", "/api/staff/broadcasts/{id}", CITY),
    ("GET", "/api/staff/broadcasts/1/recipients", "/api/staff/broadcasts/{id}/recipients", CITY),
    ("POST", "/api/staff/broadcasts/1/approve", "/api/staff/broadcasts/{id}/approve", {"admin", "approver"}),
    ("POST", "/api/staff/broadcasts/1/cancel", "/api/staff/broadcasts/{id}/cancel", SEND),
    ("POST", "/api/staff/broadcasts/1/retry-failed", "/api/staff/broadcasts/{id}/retry-failed", SEND),
    ("GET", "/api/staff/schools", "/api/staff/schools", {"admin", "school"}),
    ("GET", "/api/staff/schools/s1/classes", "/api/staff/schools/{id}/classes", {"admin", "school"}),
    ("POST", "/api/staff/notices", "/api/staff/notices", {"admin", "school"}),
    ("GET", "/api/staff/notices", "/api/staff/notices", {"admin", "school"}),
    ("GET", "/api/staff/notices/1", "/api/staff/notices/{id}", {"admin", "school"}),
    ("POST", "/api/staff/notices/1/remind", "/api/staff/notices/{id}/remind", {"admin", "school"}),
    ("GET", "/api/staff/dashboard", "/api/staff/dashboard", CITY),
    ("GET", "/api/staff/dashboard/messages.svg", "/api/staff/dashboard/{figure}.svg", CITY),
    ("GET", "/api/staff/dashboard/delivery.csv", "/api/staff/dashboard/{figure}.csv", CITY),
    ("GET", "/api/staff/unanswered", "/api/staff/unanswered", {"admin", "viewer"}),
    ("POST", "/api/staff/unanswered/assign", "/api/staff/unanswered/assign", {"admin"}),
    ("GET", "/api/staff/unanswered/export", "/api/staff/unanswered/export", {"admin"}),
    ("GET", "/api/staff/handoffs", "/api/staff/handoffs", AGENTS),
    ("GET", "/api/staff/handoffs/stats", "/api/staff/handoffs/stats", AGENTS),
    ("GET", "/api/staff/handoffs/stream", "/api/staff/handoffs/stream", AGENTS),
    ("GET", "/api/staff/handoffs/1", "/api/staff/handoffs/{id}", AGENTS),
    ("POST", "/api/staff/handoffs/1/claim", "/api/staff/handoffs/{id}/claim", AGENTS),
    ("POST", "/api/staff/handoffs/1/reply", "/api/staff/handoffs/{id}/reply", AGENTS),
    ("POST", "/api/staff/handoffs/1/note", "/api/staff/handoffs/{id}/note", AGENTS),
    ("POST", "/api/staff/handoffs/1/transfer", "/api/staff/handoffs/{id}/transfer", AGENTS),
    ("POST", "/api/staff/handoffs/1/close", "/api/staff/handoffs/{id}/close", AGENTS),
    ("POST", "/api/staff/handoffs/1/reveal", "/api/staff/handoffs/{id}/reveal", AGENTS),
    ("GET", "/api/staff/workorders", "/api/staff/workorders", AGENTS),
    ("POST", "/api/staff/workorders/1/status", "/api/staff/workorders/{id}/status", AGENTS),
]
PUBLIC = [("POST", "/api/staff/login"), ("GET", "/api/staff/openapi.json")]
IDS = [f"{method} {routed}" for method, _, routed, _ in ENDPOINTS]
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_table_covers_every_route(gw: StaffGateway) -> None:
    table = {(method, routed) for method, _, routed, _ in ENDPOINTS} | set(PUBLIC)
    assert routed_paths(gw) == table


def assert_error(reply, status: int, code: str) -> None:
    assert reply.status == status, (reply.status, reply.body)
    assert isinstance(reply.body, dict) and reply.body["code"] == code, reply.body
    assert CJK.search(reply.body["error"]), reply.body


@pytest.mark.parametrize(("method", "path", "routed", "roles"), ENDPOINTS, ids=IDS)
async def test_no_session_is_401(anonymous: StaffClient, gw: StaffGateway, method, path, routed, roles) -> None:
    before = len(gw.audit())
    assert_error(await anonymous.request(method, path, json={}), 401, "unauthenticated")
    # A cookie that names no session is no better.
    anonymous.http.cookie_jar.update_cookies({"citygw_staff": "x" * 43}, anonymous.base)
    assert_error(await anonymous.request(method, path, json={}, csrf="whatever"), 401, "unauthenticated")
    assert len(gw.audit()) == before


RESTRICTED = [e for e in ENDPOINTS if e[3] != ALL]  # /me, /logout and /areas are for every role


@pytest.mark.parametrize(
    ("method", "path", "routed", "roles"), RESTRICTED, ids=[f"{m} {r}" for m, _, r, _ in RESTRICTED]
)
async def test_wrong_role_is_403(
    clients: dict[str, StaffClient], gw: StaffGateway, method, path, routed, roles
) -> None:
    before = len(gw.audit())
    for role in sorted(ALL - roles):
        reply = await clients[ROLE_USER[role]].request(method, path, json={})  # with a valid CSRF token
        assert_error(reply, 403, "forbidden")
    assert len(gw.audit()) == before


NON_GET = [e for e in ENDPOINTS if e[0] != "GET"]


@pytest.mark.parametrize(("method", "path", "routed", "roles"), NON_GET, ids=[f"{m} {r}" for m, _, r, _ in NON_GET])
async def test_missing_or_wrong_csrf_is_403(
    clients: dict[str, StaffClient], gw: StaffGateway, method, path, routed, roles
) -> None:
    before = len(gw.audit())
    client = clients[ROLE_USER[sorted(roles)[0]]]  # a role that is allowed
    assert_error(await client.request(method, path, json={}, csrf=False), 403, "csrf")
    assert_error(await client.request(method, path, json={}, csrf="not-the-token"), 403, "csrf")
    other = clients["admin" if client is not clients["admin"] else "sender"]
    assert_error(await client.request(method, path, json={}, csrf=other.csrf), 403, "csrf")  # another session's
    assert len(gw.audit()) == before
    assert (await client.get("/api/staff/me")).status == 200  # still signed in


async def test_public_endpoints_need_no_session(anonymous: StaffClient) -> None:
    reply = await anonymous.get("/api/staff/openapi.json")
    assert reply.status == 200 and reply.body["openapi"].startswith("3.1")
    reply = await anonymous.post("/api/staff/login", {"username": "nobody", "password": "wrong password"})
    assert_error(reply, 401, "login_failed")


async def test_school_staff_only_their_own_school(clients: dict[str, StaffClient]) -> None:
    teacher = clients["teacher1"]
    assert (await teacher.get("/api/staff/schools/s1/classes")).status == 200
    assert_error(await teacher.get("/api/staff/schools/s2/classes"), 403, "forbidden")
    reply = await clients["teacher2"].get("/api/staff/schools/s2/classes")
    assert [c["name"] for c in reply.body["classes"]] == ["三年级1班"]
    admin = await clients["admin"].get("/api/staff/schools/s1/classes")
    assert admin.body == {
        "school": {"id": "s1", "name": "第一小学"},
        "classes": [
            {"id": "s1-3-1", "grade": 3, "name": "三年级1班"},
            {"id": "s1-4-1", "grade": 4, "name": "四年级1班"},
        ],
    }
    assert_error(await clients["admin"].get("/api/staff/schools/nope/classes"), 404, "not_found")


async def test_unknown_paths_and_methods_are_json(clients: dict[str, StaffClient], anonymous: StaffClient) -> None:
    assert_error(await anonymous.get("/api/staff/nothing-here"), 404, "not_found")
    assert_error(await clients["admin"].get("/api/staff/broadcasts/abc"), 404, "not_found")
    reply = await clients["admin"].request("DELETE", "/api/staff/users")
    assert_error(reply, 405, "method_not_allowed")
    assert "GET" in reply.headers["Allow"] and "POST" in reply.headers["Allow"]


async def test_console_pages_are_served_and_not_frameable(anonymous: StaffClient) -> None:
    async with anonymous.http.get(anonymous.base.join(URL("/staff")), allow_redirects=False) as response:
        assert (response.status, response.headers["Location"]) == (302, "/staff/")
    async with anonymous.http.get(anonymous.base.join(URL("/staff/"))) as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    async with anonymous.http.get(anonymous.base.join(URL("/staff/static/app.js"))) as response:
        assert response.status == 200


async def test_ids_beyond_64_bits_are_not_found_not_a_crash(clients: dict[str, StaffClient]) -> None:
    huge = 2**64 + 7
    for client, method, path in [
        ("admin", "GET", f"/api/staff/broadcasts/{huge}"),
        ("admin", "GET", f"/api/staff/broadcasts/{huge}/recipients"),
        ("approver", "POST", f"/api/staff/broadcasts/{huge}/approve"),
        ("sender", "POST", f"/api/staff/broadcasts/{huge}/cancel"),
        ("admin", "POST", f"/api/staff/users/{huge}/disable"),
        ("admin", "GET", f"/api/staff/notices/{huge}"),
    ]:
        reply = await clients[client].request(method, path, json={} if method == "POST" else None)
        assert_error(reply, 404, "not_found")
