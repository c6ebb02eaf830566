"""Broadcasts and school notices through the API and the real engine (gateway.broadcast.service).

No runner fans out here (the dispatcher is off): where a test needs recipients, it writes their rows
as the runner would, then looks at what the API shows and does with them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from gateway.staff.tests.conftest import StaffClient, StaffGateway

B = "/api/staff/broadcasts"
N = "/api/staff/notices"


def key() -> str:
    return f"test-{uuid.uuid4().hex}"


def notice_body(**overrides: Any) -> dict[str, Any]:
    return {
        "kind": "notice",
        "title": "停水通知",
        "body": "明天9:00至17:00一区停水，请提前储水。",
        "audience": {"type": "districts", "ids": ["d1"]},
        "idempotency_key": key(),
        **overrides,
    }


def add_recipient(gw: StaffGateway, broadcast_id: int, phone: str, status: str, **extra: Any) -> None:
    """A recipient row as the runner would write it."""
    (citizen,) = gw.query("SELECT id FROM citizen WHERE phone = ?", phone)
    row = {"broadcast_id": broadcast_id, "citizen_id": citizen["id"], "channel": "sms", "address": phone}
    row |= {"status": status, "attempts": 1, **extra}
    gw.execute(f"INSERT INTO broadcastrecipient ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", *row.values())


def audited(gw: StaffGateway, action: str, target: str) -> list[dict[str, Any]]:
    return [r for r in gw.audit(action) if r["target"] == target]


async def test_preview_counts_recipients_and_cost(clients: dict[str, StaffClient]) -> None:
    body = {"kind": "notice", "body": "明天一区停水。", "audience": {"type": "districts", "ids": ["d1"]}}
    reply = await clients["sender"].post(f"{B}/preview", body)
    assert reply.status == 200, reply.body
    preview = reply.body
    assert preview["recipients"] == {"sms": 8, "wechat": 0, "webpush": 0, "total": 8}  # citizens of 甲社区 and 乙社区
    assert preview["segments"] == 1 and "明天一区停水。" in preview["sms_text"]
    assert preview["cost_yuan"] == round(8 * 1 * 0.045, 3)
    assert set(preview) == {"recipients", "excluded", "segments", "cost_yuan", "quiet_hours", "sms_text"}
    reply = await clients["admin"].post(f"{B}/preview", {**body, "audience": {"type": "districts", "ids": ["d9"]}})
    assert reply.status == 400 and "d9" in reply.body["error"], reply.body


async def test_upload_parses_a_phone_list(clients: dict[str, StaffClient]) -> None:
    sender = clients["sender"]
    text = "13900000001\nnot a phone\n+86 139 0000 0002\n13900000001\n"
    reply = await sender.post(f"{B}/upload", data=text.encode(), headers={"Content-Type": "text/plain"})
    assert reply.status == 200, reply.body
    assert reply.body["valid"] == ["+8613900000001", "+8613900000002"]
    assert [(e["line"], e["value"]) for e in reply.body["errors"]] == [(2, "not a phone"), (4, "13900000001")]
    # A spreadsheet saved on Chinese Windows: GB18030, with a header row.
    csv = "手机号,姓名\n13900000003,张三\n".encode("gb18030")
    reply = await sender.post(f"{B}/upload", data=csv, headers={"Content-Type": "text/csv; charset=gbk"})
    assert (reply.status, reply.body["valid"], reply.body["errors"]) == (200, ["+8613900000003"], [])
    reply = await sender.post(f"{B}/upload", json={"phones": ["13900000001"]})
    assert (reply.status, reply.body["code"]) == (415, "content_type")


async def test_emergency_needs_a_second_person_to_approve(clients: dict[str, StaffClient], gw: StaffGateway) -> None:
    body = notice_body(kind="emergency", title="大风预警", body="今晚有8级大风，请关好门窗。", audience={"type": "all"})
    reply = await clients["sender"].post(B, body)
    assert reply.status == 201, reply.body
    broadcast = reply.body["broadcast"]
    assert (broadcast["kind"], broadcast["status"], broadcast["created_by"]) == (
        "emergency",
        "pending_approval",
        gw.staff_id("sender"),
    )
    target = f"broadcast:{broadcast['id']}"
    # The same request again (a double click, a retried POST) is the same broadcast.
    again = await clients["sender"].post(B, body)
    assert (again.status, again.body["broadcast"]["id"]) == (200, broadcast["id"])
    (created,) = audited(gw, "broadcast_create", target)
    assert (created["staff_id"], created["ip"]) == (gw.staff_id("sender"), "127.0.0.1")
    assert json.loads(created["detail"]) == {"kind": "emergency", "title": "大风预警"}

    reply = await clients["approver"].post(f"{B}/{broadcast['id']}/approve")
    assert reply.status == 200, reply.body
    approved = reply.body["broadcast"]
    assert (approved["status"], approved["approved_by"]) == ("scheduled", gw.staff_id("approver"))
    assert approved["approved_at"]
    (entry,) = audited(gw, "broadcast_approve", target)
    assert entry["staff_id"] == gw.staff_id("approver")
    reply = await clients["approver"].post(f"{B}/{broadcast['id']}/approve")
    assert reply.status == 409 and reply.body["code"] == "not_pending"

    # An admin may approve, but never their own emergency.
    own = await clients["admin"].post(B, {**body, "idempotency_key": key()})
    reply = await clients["admin"].post(f"{B}/{own.body['broadcast']['id']}/approve")
    assert reply.status == 409 and reply.body["code"] == "self_approval" and "自己" in reply.body["error"]
    assert audited(gw, "broadcast_approve", f"broadcast:{own.body['broadcast']['id']}") == []


async def test_everyone_in_the_city_reads_broadcasts_and_progress(clients: dict[str, StaffClient]) -> None:
    reply = await clients["sender"].post(B, notice_body())
    assert reply.status == 201 and reply.body["broadcast"]["status"] == "scheduled"
    broadcast_id = reply.body["broadcast"]["id"]
    for username in ("admin", "sender", "approver", "viewer"):
        listing = await clients[username].get(B)
        assert listing.status == 200 and broadcast_id in [b["id"] for b in listing.body["broadcasts"]]
        detail = await clients[username].get(f"{B}/{broadcast_id}")
        assert detail.status == 200 and detail.body["broadcast"]["title"] == "停水通知"
        assert detail.body["progress"] == {
            "total": 0,
            "queued": 0,
            "sent": 0,
            "delivered": 0,
            "failed": 0,
            "skipped": 0,
            "acked": 0,
        }
    only = await clients["viewer"].get(f"{B}?kind=emergency&limit=200")
    assert {b["kind"] for b in only.body["broadcasts"]} <= {"emergency"}
    reply = await clients["viewer"].get(f"{B}/999999")
    assert (reply.status, reply.body["code"]) == (404, "not_found")


async def test_recipients_retry_and_cancel(clients: dict[str, StaffClient], gw: StaffGateway) -> None:
    reply = await clients["sender"].post(B, notice_body(scheduled_at="2099-01-01T08:00"))
    assert reply.status == 201, reply.body
    broadcast = reply.body["broadcast"]
    assert broadcast["scheduled_at"] == "2099-01-01T00:00:00Z"  # 08:00 city time
    bid, target = broadcast["id"], f"broadcast:{broadcast['id']}"
    add_recipient(gw, bid, "+8613900000001", "failed", error="30006")
    add_recipient(gw, bid, "+8613900000003", "queued")
    add_recipient(gw, bid, "+8613900000004", "delivered")

    reply = await clients["viewer"].get(f"{B}/{bid}/recipients")
    assert reply.status == 200 and (reply.body["offset"], reply.body["limit"]) == (0, 50)
    addresses = [r["address"] for r in reply.body["recipients"]]
    assert len(addresses) == 3 and all("+8613900000" not in a and "***" in a for a in addresses)
    failed = await clients["viewer"].get(f"{B}/{bid}/recipients?status=failed")
    assert [r["status"] for r in failed.body["recipients"]] == ["failed"]
    reply = await clients["viewer"].get(f"{B}/{bid}/recipients?status=lost")
    assert (reply.status, reply.body["field"]) == (400, "status")
    assert (await clients["viewer"].get(f"{B}/{bid}")).body["progress"]["failed"] == 1

    reply = await clients["sender"].post(f"{B}/{bid}/retry-failed")
    assert reply.status == 200 and reply.body == {"retried": 1}
    (entry,) = audited(gw, "broadcast_retry", target)
    assert (entry["staff_id"], json.loads(entry["detail"])) == (gw.staff_id("sender"), {"count": 1})

    reply = await clients["admin"].post(f"{B}/{bid}/cancel")
    assert reply.status == 200 and reply.body["broadcast"]["status"] == "cancelled"
    statuses = [r["status"] for r in gw.query("SELECT status FROM broadcastrecipient WHERE broadcast_id = ?", bid)]
    assert statuses.count("queued") == 0 and "delivered" in statuses  # queued ones are never sent
    (entry,) = audited(gw, "broadcast_cancel", target)
    assert entry["staff_id"] == gw.staff_id("admin")
    reply = await clients["sender"].post(f"{B}/{bid}/retry-failed")
    assert reply.status == 409 and reply.body["code"] == "cancelled"


async def test_broadcast_bodies_are_validated_field_by_field(clients: dict[str, StaffClient], gw: StaffGateway) -> None:
    before = gw.query("SELECT count(*) AS n FROM broadcast")[0]["n"]
    cases = [
        (notice_body(body="长" * 501), "body"),
        (notice_body(title=""), "title"),
        (notice_body(kind="school"), "kind"),
        (notice_body(audience={"type": "everyone"}), "audience.type"),
        (notice_body(audience={"type": "districts"}), "audience.ids"),
        (notice_body(audience={"type": "school"}), "audience.type"),
        (notice_body(scheduled_at="tomorrow"), "scheduled_at"),
        (notice_body(idempotency_key="short"), "idempotency_key"),
        ({k: v for k, v in notice_body().items() if k != "idempotency_key"}, "idempotency_key"),
        (notice_body(colour="red"), "colour"),
    ]
    for body, field in cases:
        reply = await clients["sender"].post(B, body)
        assert (reply.status, reply.body["code"], reply.body["field"]) == (400, "invalid", field), (body, reply.body)
        assert field.split(".")[-1] in reply.body["error"]
    reply = await clients["sender"].post(B, notice_body(audience={"type": "communities", "ids": ["c1", "zz"]}))
    assert reply.status == 400 and "zz" in reply.body["error"]  # the engine names what it does not know
    assert gw.query("SELECT count(*) AS n FROM broadcast")[0]["n"] == before


# --- school notices ---------------------------------------------------------------------------------


def school_notice(**overrides: Any) -> dict[str, Any]:
    return {
        "title": "家长会通知",
        "body": "本周五16:00召开家长会，请准时参加。",
        "audience": {"type": "school"},
        "urgent": False,
        "idempotency_key": key(),
        **overrides,
    }


async def test_school_notice_acknowledgements_and_reminders(clients: dict[str, StaffClient], gw: StaffGateway) -> None:
    teacher = clients["teacher1"]
    reply = await teacher.post(N, school_notice(urgent=True))
    assert reply.status == 201, reply.body
    notice = reply.body["notice"]
    assert (notice["kind"], notice["school_id"], notice["status"], notice["urgent"]) == (
        "school",
        "s1",
        "scheduled",
        True,
    )
    nid, target = notice["id"], f"notice:{notice['id']}"
    (entry,) = audited(gw, "notice_create", target)
    assert (entry["staff_id"], json.loads(entry["detail"])["school_id"]) == (gw.staff_id("teacher1"), "s1")
    again = await teacher.post(N, {**school_notice(), "idempotency_key": notice["idempotency_key"]})
    assert (again.status, again.body["notice"]["id"]) == (200, nid)

    add_recipient(gw, nid, "+8613900000001", "delivered", student_id="S1001", acked_at="2026-11-25 03:00:00.000000")
    add_recipient(gw, nid, "+8613900000002", "delivered", student_id="S1002")
    reply = await teacher.get(f"{N}/{nid}")
    assert reply.status == 200
    assert reply.body["notice"]["id"] == nid and reply.body["progress"]["acked"] == 1
    by_student = {r["student_name"]: r for r in reply.body["recipients"]}
    assert set(by_student) == {"张小明", "李小红"}
    assert by_student["张小明"]["acked_at"] and by_student["李小红"]["acked_at"] is None
    assert all("***" in r["address"] for r in reply.body["recipients"])
    unacked = await teacher.get(f"{N}/{nid}?status=unacked")
    assert [r["student_name"] for r in unacked.body["recipients"]] == ["李小红"]

    reply = await teacher.post(f"{N}/{nid}/remind")
    assert reply.status == 200 and reply.body == {"reminded": 1}
    (entry,) = audited(gw, "notice_remind", target)
    assert (entry["staff_id"], json.loads(entry["detail"])) == (gw.staff_id("teacher1"), {"count": 1})

    # Another school's staff can neither see nor act on it; city staff do not see it as a broadcast.
    other = clients["teacher2"]
    assert (await other.get(f"{N}/{nid}")).body["code"] == "forbidden"
    assert (await other.post(f"{N}/{nid}/remind")).body["code"] == "forbidden"
    assert nid not in [n["id"] for n in (await other.get(N)).body["notices"]]
    assert nid in [n["id"] for n in (await teacher.get(N)).body["notices"]]
    assert (await clients["viewer"].get(f"{B}/{nid}")).status == 404
    assert nid not in [b["id"] for b in (await clients["viewer"].get(f"{B}?limit=200")).body["broadcasts"]]
    assert audited(gw, "notice_remind", target) == [entry]


async def test_school_staff_send_only_for_their_school(clients: dict[str, StaffClient], gw: StaffGateway) -> None:
    teacher = clients["teacher1"]
    reply = await teacher.post(N, school_notice(school_id="s2"))
    assert (reply.status, reply.body["code"]) == (403, "forbidden")
    reply = await teacher.post(N, school_notice(audience={"type": "classes", "ids": ["s2-3-1"]}))
    assert reply.status == 400 and "s2-3-1" in reply.body["error"], reply.body
    reply = await teacher.post(N, school_notice(audience={"type": "grade", "grades": [3]}))
    assert reply.status == 201 and reply.body["notice"]["audience"] == {"type": "grade", "grades": [3]}
    reply = await teacher.post(N, school_notice(audience={"type": "all"}))
    assert (reply.status, reply.body["field"]) == (400, "audience.type")
    # An admin names the school.
    reply = await clients["admin"].post(N, school_notice())
    assert (reply.status, reply.body["field"]) == (400, "school_id")
    reply = await clients["admin"].post(N, school_notice(school_id="s2"))
    assert reply.status == 201 and reply.body["notice"]["school_id"] == "s2"
    city = (await clients["sender"].post(B, notice_body())).body["broadcast"]["id"]
    assert (await clients["admin"].get(f"{N}/{city}")).status == 404  # a city broadcast is not a notice


async def test_uploaded_numbers_are_masked_wherever_a_broadcast_is_shown(
    clients: dict[str, StaffClient], gw: StaffGateway
) -> None:
    phones = ["+8613900000005", "+8613900000006"]
    reply = await clients["sender"].post(B, notice_body(audience={"type": "list", "phones": phones}))
    assert reply.status == 201, reply.body
    bid = reply.body["broadcast"]["id"]
    shown = [
        reply.body["broadcast"],
        (await clients["viewer"].get(f"{B}/{bid}")).body["broadcast"],
        next(b for b in (await clients["viewer"].get(f"{B}?limit=200")).body["broadcasts"] if b["id"] == bid),
    ]
    for broadcast in shown:
        assert broadcast["audience"]["type"] == "list" and len(broadcast["audience"]["phones"]) == 2
        assert not any(p in str(broadcast) for p in phones)
    # The engine keeps the real numbers: they are what gets sent.
    (row,) = gw.query("SELECT audience FROM broadcast WHERE id = ?", bid)
    assert json.loads(row["audience"])["phones"] == phones


async def test_an_idempotency_key_is_its_creators_only(clients: dict[str, StaffClient]) -> None:
    """School staff posting a key the city already used got the city's emergency back (title, body,
    audience): a key now belongs to whoever made the broadcast with it."""
    shared = key()
    city = await clients["sender"].post(B, notice_body(title="全市停水", idempotency_key=shared))
    assert city.status == 201, city.body
    again = await clients["sender"].post(B, notice_body(title="全市停水", idempotency_key=shared))
    assert (again.status, again.body["broadcast"]["id"]) == (200, city.body["broadcast"]["id"])
    school = await clients["teacher1"].post(N, school_notice(idempotency_key=shared))
    assert (school.status, school.body["code"]) == (409, "idempotency_key_taken")
    assert "全市停水" not in str(school.body) and "d1" not in str(school.body)
