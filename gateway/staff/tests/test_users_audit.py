"""Accounts (admin only) and the audit trail."""

from __future__ import annotations

import json

from gateway.staff.tests.conftest import StaffClient, StaffGateway


async def test_admin_creates_lists_and_disables_accounts(clients: dict[str, StaffClient], gw: StaffGateway) -> None:
    admin = clients["admin"]
    reply = await admin.post(
        "/api/staff/users",
        {
            "username": "newteacher",
            "display_name": "新老师",
            "password": "a long password",
            "role": "school",
            "school_id": "s2",
        },
    )
    assert reply.status == 201, reply.body
    user = reply.body["user"]
    assert {k: user[k] for k in ("username", "display_name", "role", "school_id", "active")} == {
        "username": "newteacher",
        "display_name": "新老师",
        "role": "school",
        "school_id": "s2",
        "active": True,
    }
    (row,) = gw.query("SELECT password_hash FROM staffuser WHERE id = ?", user["id"])
    assert row["password_hash"].startswith("$argon2id$") and "a long password" not in row["password_hash"]
    listed = await admin.get("/api/staff/users")
    assert "newteacher" in [u["username"] for u in listed.body["users"]]
    assert all("password_hash" not in u for u in listed.body["users"])
    # The new account works, for its own school only.
    teacher = gw.client()
    assert (await teacher.login("newteacher", "a long password")).status == 200
    assert (await teacher.get("/api/staff/schools/s2/classes")).status == 200
    assert (await teacher.get("/api/staff/schools/s1/classes")).status == 403
    own = (await teacher.get("/api/staff/schools")).body["schools"]
    assert [school["id"] for school in own] == ["s2"]  # a school's staff see their school only
    everyone = (await admin.get("/api/staff/schools")).body["schools"]
    assert {"s1", "s2"} <= {school["id"] for school in everyone} and all(school["name"] for school in everyone)

    reply = await admin.post(f"/api/staff/users/{user['id']}/disable")
    assert reply.status == 200 and reply.body["user"]["active"] is False
    assert (await teacher.get("/api/staff/me")).status == 401

    created = gw.audit("user_create")[-1]
    assert (created["staff_id"], created["target"], created["ip"]) == (
        gw.staff_id("admin"),
        f"staff:{user['id']}",
        "127.0.0.1",
    )
    assert json.loads(created["detail"]) == {"username": "newteacher", "role": "school", "school_id": "s2"}
    disabled = gw.audit("user_disable")[-1]
    assert (disabled["staff_id"], disabled["target"]) == (gw.staff_id("admin"), f"staff:{user['id']}")


async def test_account_rules_are_explained_in_chinese(clients: dict[str, StaffClient]) -> None:
    admin = clients["admin"]
    good = {"username": "someone", "password": "a long password", "role": "viewer"}
    cases = [
        ({**good, "username": "admin"}, 409, "username_taken", "username"),
        ({**good, "role": "school"}, 400, "invalid", "school_id"),
        ({**good, "role": "school", "school_id": "nope"}, 400, "invalid", "school_id"),
        ({**good, "school_id": "s1"}, 400, "invalid", "school_id"),
        ({**good, "role": "superuser"}, 400, "invalid", "role"),
        ({**good, "password": "short"}, 400, "invalid", "password"),
        ({**good, "username": "有空格 的名字"}, 400, "invalid", "username"),
        ({k: v for k, v in good.items() if k != "role"}, 400, "invalid", "role"),
    ]
    for body, status, code, field in cases:
        reply = await admin.post("/api/staff/users", body)
        assert (reply.status, reply.body["code"], reply.body.get("field")) == (status, code, field), (body, reply.body)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in reply.body["error"])
    assert "superuser" not in str(await admin.get("/api/staff/users"))


async def test_admin_cannot_disable_themself_or_a_missing_account(
    clients: dict[str, StaffClient], gw: StaffGateway
) -> None:
    admin = clients["admin"]
    reply = await admin.post(f"/api/staff/users/{gw.staff_id('admin')}/disable")
    assert (reply.status, reply.body["code"]) == (409, "self")
    reply = await admin.post("/api/staff/users/999999/disable")
    assert (reply.status, reply.body["code"]) == (404, "not_found")
    assert (await admin.get("/api/staff/me")).status == 200


async def test_audit_list_is_newest_first_with_usernames(clients: dict[str, StaffClient], gw: StaffGateway) -> None:
    admin = clients["admin"]
    reply = await admin.get("/api/staff/audit?limit=3")
    assert reply.status == 200
    entries = reply.body["entries"]
    assert len(entries) == 3
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    newest = gw.query("SELECT * FROM auditlog ORDER BY id DESC LIMIT 1")[0]
    assert entries[0]["id"] == newest["id"] and entries[0]["action"] == newest["action"]
    logins = [e for e in (await admin.get("/api/staff/audit?limit=500")).body["entries"] if e["action"] == "login"]
    assert {e["username"] for e in logins} >= {"admin", "sender", "viewer", "teacher1"}
    page = await admin.get("/api/staff/audit?limit=2&offset=1")
    assert [e["id"] for e in page.body["entries"]] == [e["id"] for e in entries[1:3]]
    for query, field in [("limit=0", "limit"), ("limit=abc", "limit"), ("limit=501", "limit"), ("offset=-1", "offset")]:
        reply = await admin.get(f"/api/staff/audit?{query}")
        assert (reply.status, reply.body["code"], reply.body["field"]) == (400, "invalid", field)
        assert "查询参数" in reply.body["error"]


async def test_areas_lists_districts_communities_and_topics(clients: dict[str, StaffClient]) -> None:
    reply = await clients["teacher1"].get("/api/staff/areas")
    assert reply.status == 200
    assert reply.body["districts"] == [
        {"id": "d1", "name": "一区", "communities": [{"id": "c1", "name": "甲社区"}, {"id": "c2", "name": "乙社区"}]},
        {"id": "d2", "name": "二区", "communities": [{"id": "c3", "name": "丙社区"}]},
    ]
    topics = {t["id"]: t["name"] for t in reply.body["topics"]}
    assert topics["air_quality_alerts"] == "空气质量预警" and topics["weather_alerts"] == "气象灾害预警"


async def test_weak_passwords_are_refused_with_the_reason(clients: dict[str, StaffClient]) -> None:
    admin = clients["admin"]
    for password, reason in [
        ("12345678", "至少需要10个字符"),
        ("password", "至少需要10个字符"),
        ("password123", "太常见"),
        ("Password2026!", "太常见"),
        ("aaaaaaaaaaaa", "太常见"),
        ("my-zhaolei-pass", "不能包含用户名"),
    ]:
        reply = await admin.post("/api/staff/users", {"username": "zhaolei", "password": password, "role": "viewer"})
        assert (reply.status, reply.body.get("field")) == (400, "password"), (password, reply.body)
        assert reason in reply.body["error"], (password, reply.body)
    reply = await admin.post(
        "/api/staff/users", {"username": "zhaolei", "password": "戈壁滩上的红柳迎风站立", "role": "viewer"}
    )
    assert reply.status in (200, 201), reply.body
