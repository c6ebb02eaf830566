"""The dashboard's figures through the staff API: citizens' messages by channel per city-local day and
delivery per channel over a chosen range, as JSON, as server-drawn SVG charts and as CSV downloads.
Messages, replies and broadcast recipients are written straight into the database at known times."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from defusedxml import ElementTree

from .conftest import StaffGateway

SVG = "{http://www.w3.org/2000/svg}"
# City time is UTC+8: 2026-12-01 23:30 UTC is already 12-02 in the city.
INBOUND = [
    ("sms", "2026-12-01 01:00:00"),
    ("sms", "2026-12-01 02:00:00"),
    ("webchat", "2026-12-01 03:00:00"),
    ("wechat", "2026-12-01 23:30:00"),
    ("sms", "2026-12-03 04:00:00"),
    ("sms", "2026-11-20 04:00:00"),  # outside the range asked for
]
# (channel, status) of replies written on 12-02
REPLIES = [("sms", "delivered"), ("sms", "delivered"), ("sms", "failed"), ("sms", "queued"), ("webchat", "sent")]
RECIPIENTS = [("sms", "delivered"), ("sms", "sent"), ("wechat", "delivered"), ("wechat", "undelivered")]


@pytest_asyncio.fixture
async def gw_with_traffic(fresh_gw: StaffGateway) -> StaffGateway:
    gw = fresh_gw
    gw.execute(
        "INSERT INTO citizen (phone, sms_opted_out, preferred_channel, created_at) VALUES ('+8613900000999', 0, 'sms', '2026-11-01 00:00:00')"
    )
    citizen = gw.query("SELECT id FROM citizen WHERE phone = '+8613900000999'")[0]["id"]
    gw.execute(
        "INSERT INTO channelidentity (channel, address, citizen_id, created_at, last_seen_at) VALUES ('sms', 'x', ?, '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
        citizen,
    )
    identity = gw.query("SELECT id FROM channelidentity WHERE address = 'x'")[0]["id"]
    gw.execute(
        "INSERT INTO conversation (id, citizen_id, identity_id, channel, started_at, last_active_at) VALUES ('conv-dash', ?, ?, 'sms', '2026-11-01 00:00:00', '2026-11-01 00:00:00')",
        citizen,
        identity,
    )
    for channel, at in INBOUND:
        gw.execute(
            "INSERT INTO message (conversation_id, direction, channel, text, status, attempts, created_at) VALUES ('conv-dash', 'in', ?, 'q', 'answered', 0, ?)",
            channel,
            at,
        )
    for channel, status in REPLIES:
        gw.execute(
            "INSERT INTO message (conversation_id, direction, channel, text, status, attempts, created_at) VALUES ('conv-dash', 'out', ?, 'a', ?, 0, '2026-12-02 05:00:00')",
            channel,
            status,
        )
    admin = gw.staff_id("admin")
    gw.execute(
        "INSERT INTO broadcast (kind, title, body, audience, urgent, status, created_by, created_at, fanout_cursor, enqueued_upto, recipient_total) VALUES ('notice', 't', 'b', '{}', 0, 'completed', ?, '2026-12-02 06:00:00', 0, 0, 4)",
        admin,
    )
    broadcast = gw.query("SELECT id FROM broadcast")[0]["id"]
    for n, (channel, status) in enumerate(RECIPIENTS):  # one citizen each: a recipient row per citizen
        phone = f"+86139000010{n:02d}"
        gw.execute(
            "INSERT INTO citizen (phone, sms_opted_out, preferred_channel, created_at) VALUES (?, 0, 'sms', '2026-11-01 00:00:00')",
            phone,
        )
        recipient = gw.query("SELECT id FROM citizen WHERE phone = ?", phone)[0]["id"]
        gw.execute(
            "INSERT INTO broadcastrecipient (broadcast_id, citizen_id, channel, address, status, attempts) VALUES (?, ?, ?, 'x', ?, 0)",
            broadcast,
            recipient,
            channel,
            status,
        )
    return gw


async def test_messages_per_day_and_delivery_per_channel(gw_with_traffic: StaffGateway):
    gw = gw_with_traffic
    viewer = await gw.signed_in("viewer")
    reply = await viewer.get("/api/staff/dashboard?start=2026-12-01&end=2026-12-03")
    assert reply.status == 200, reply.body
    body = reply.body
    days = {d["day"]: d["counts"] for d in body["days"]}
    assert days == {
        "2026-12-01": {"sms": 2, "webchat": 1, "wechat": 0},
        "2026-12-02": {"sms": 0, "webchat": 0, "wechat": 1},  # 23:30 UTC is the next morning in the city
        "2026-12-03": {"sms": 1, "webchat": 0, "wechat": 0},
    }
    delivery = {d["channel"]: d for d in body["delivery"]}
    # replies: 2 delivered + 1 failed (the queued one has not left; web chat has no reports); recipients: 1 + 1
    assert (delivery["sms"]["sent"], delivery["sms"]["delivered"], delivery["sms"]["failed"]) == (5, 3, 1)
    assert delivery["sms"]["rate"] == 0.6
    assert (delivery["wechat"]["sent"], delivery["wechat"]["delivered"], delivery["wechat"]["failed"]) == (2, 1, 1)
    assert "webchat" not in delivery and delivery["wechat"]["name"] == "微信"


async def test_charts_are_svg_with_a_bar_per_figure(gw_with_traffic: StaffGateway):
    viewer = await gw_with_traffic.signed_in("viewer")
    chart = await viewer.get("/api/staff/dashboard/messages.svg?start=2026-12-01&end=2026-12-03")
    assert chart.status == 200 and chart.headers["Content-Type"].startswith("image/svg+xml")
    root = ElementTree.fromstring(chart.body.encode())
    assert root.get("role") == "img" and "每日市民消息" in root.find(f"{SVG}title").text
    bars = [r.find(f"{SVG}title").text for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert sorted(bars) == sorted(["12-01 短信 2", "12-01 网页聊天 1", "12-02 微信 1", "12-03 短信 1"])

    rates = await viewer.get("/api/staff/dashboard/delivery.svg?start=2026-12-01&end=2026-12-03")
    root = ElementTree.fromstring(rates.body.encode())
    bars = [r.find(f"{SVG}title").text for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert bars == ["短信 送达率 60.0%（3/5）", "微信 送达率 50.0%（1/2）"]


async def test_each_table_downloads_as_csv(gw_with_traffic: StaffGateway):
    viewer = await gw_with_traffic.signed_in("viewer")
    reply = await viewer.get("/api/staff/dashboard/messages.csv?start=2026-12-01&end=2026-12-03")
    assert reply.status == 200 and "attachment" in reply.headers["Content-Disposition"]
    assert reply.body.startswith("\ufeff")  # Excel reads UTF-8 with the mark
    rows = list(csv.reader(io.StringIO(reply.body.removeprefix("\ufeff"))))
    assert rows == [
        ["日期", "短信", "网页聊天", "微信", "合计"],
        ["2026-12-01", "2", "1", "0", "3"],
        ["2026-12-02", "0", "0", "1", "1"],
        ["2026-12-03", "1", "0", "0", "1"],
    ]
    reply = await viewer.get("/api/staff/dashboard/delivery.csv?start=2026-12-01&end=2026-12-03")
    rows = list(csv.reader(io.StringIO(reply.body.removeprefix("\ufeff"))))
    assert rows == [
        ["渠道", "已发出", "已送达", "失败", "送达率"],
        ["短信", "5", "3", "1", "60.0%"],
        ["微信", "2", "1", "1", "50.0%"],
    ]


async def test_a_range_that_cannot_be_shown_is_refused_with_the_reason(gw_with_traffic: StaffGateway):
    viewer = await gw_with_traffic.signed_in("viewer")
    backwards = await viewer.get("/api/staff/dashboard?start=2026-12-03&end=2026-12-01")
    assert backwards.status == 400 and "开始日期不能晚于结束日期" in backwards.body["error"]
    start = datetime(2026, 1, 1, tzinfo=UTC).date()
    too_long = await viewer.get(f"/api/staff/dashboard.svg?start={start}&end={start + timedelta(days=200)}")
    assert too_long.status == 404  # no such chart
    too_long = await viewer.get(f"/api/staff/dashboard/messages.svg?start={start}&end={start + timedelta(days=200)}")
    assert too_long.status == 400 and "92" in too_long.body["error"]
    not_a_date = await viewer.get("/api/staff/dashboard?start=yesterday")
    assert not_a_date.status == 400
