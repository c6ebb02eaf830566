"""The service functions the staff API calls, and the fan-out they lead to, against a real database
(SQLite and PostgreSQL). Expected counts come from the fixture's own record of who is who."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from channels.base import SendResult
from channels.sms.segments import segment_count
from gateway.broadcast import service
from gateway.broadcast.errors import BroadcastError
from gateway.broadcast.quiet import in_quiet_hours
from gateway.broadcast.runner import FANOUT_DONE, BroadcastRunner
from gateway.db.models import Broadcast, BroadcastRecipient, Citizen
from gateway.outbound.ledger import Ledger
from gateway.outbound.queue import MemoryQueue
from gateway.state import MemoryState
from gateway.wires import wires

from .conftest import DISTRICTS, EMPTY_COMMUNITY, ListOutbox, World, key

BODY = "今晚20点至次日6点，准噶尔路停水检修，请提前储水。"


async def create(world: World, staff: str = "bob", settings=None, **fields):
    fields.setdefault("kind", "notice")
    fields.setdefault("title", "停水通知")
    fields.setdefault("body", BODY)
    fields.setdefault("audience", {"type": "all"})
    fields.setdefault("idempotency_key", key())
    async with world.sessions() as db:
        broadcast, created = await service.create(db, settings or world.settings(), world.staff[staff], **fields)
    assert created
    return broadcast


async def fan_out(world: World, broadcast_id: int, settings=None, outbox=None) -> ListOutbox:
    outbox = outbox or ListOutbox()
    runner = BroadcastRunner(settings or world.settings(), world.sessions, MemoryState(), outbox)
    assert await runner.run_broadcast(broadcast_id)
    return outbox


async def rows(world: World, broadcast_id: int) -> list[BroadcastRecipient]:
    async with world.sessions() as db:
        found = await db.exec(
            select(BroadcastRecipient)
            .where(col(BroadcastRecipient.broadcast_id) == broadcast_id)
            .order_by(col(BroadcastRecipient.id))
        )
        return list(found.scalars().all())


async def reload(world: World, broadcast_id: int) -> Broadcast:
    async with world.sessions() as db:
        return await service.get(db, broadcast_id)


# --- phone lists ------------------------------------------------------------------------------


def test_phone_list_keeps_good_lines_and_names_bad_ones():
    upload = "\n".join(
        [
            "手机号,姓名",  # header
            "13912345678,张三",
            "+86 139-1234-5679",
            "",
            "８６１３９１２３４５６７０",  # full-width, with 86
            "12345",
            "13912345678",
            "0086 13912345671",
            "+12025550123",  # not a mainland mobile
        ]
    )
    valid, errors = service.parse_phone_list(upload)
    assert valid == ["+8613912345678", "+8613912345679", "+8613912345670", "+8613912345671"]
    assert [(e["line"], e["value"]) for e in errors] == [(6, "12345"), (7, "13912345678"), (9, "+12025550123")]
    assert errors[1]["reason"] == "与第2行重复"
    assert all(isinstance(e["reason"], str) and e["reason"] for e in errors)


# --- preview ----------------------------------------------------------------------------------


AUDIENCES = [
    ({"type": "all"}, lambda p: True),
    ({"type": "districts", "ids": ["karamay"]}, lambda p: p.district == "karamay"),
    ({"type": "communities", "ids": ["c001", "c031"]}, lambda p: p.community in ("c001", "c031")),
    ({"type": "topics", "ids": ["air_quality_alerts"]}, lambda p: "air_quality_alerts" in p.topics),
]


@pytest.mark.parametrize("kind", ["notice", "emergency"])
@pytest.mark.parametrize("audience,who", AUDIENCES, ids=[a["type"] for a, _ in AUDIENCES])
async def test_preview_counts_channels_segments_and_cost(world: World, kind, audience, who):
    settings = world.settings()
    async with world.sessions() as db:
        got = await service.preview(db, settings, kind, BODY, audience, title="停水通知")
    want = world.expected(kind == "emergency", who)
    reached = {channel: want[channel] for channel in ("sms", "wechat", "webpush")}
    assert got["recipients"] == {**reached, "total": sum(reached.values())}
    assert got["excluded"] == {"opted_out": want["opted_out"], "no_channel": want["none"]}
    text = f"{settings.sms_signature}【停水通知】{BODY}"
    assert got["sms_text"] == text
    assert got["segments"] == segment_count(text) == 1
    assert got["cost_yuan"] == pytest.approx(want["sms"] * 1 * settings.sms_price_yuan)
    assert got["quiet_hours"] is False
    if kind == "emergency":
        assert got["excluded"]["opted_out"] == 0


async def test_preview_counts_every_segment_of_a_long_body(world: World):
    settings = world.settings(sms_price_yuan=0.05)
    body = "请" * 500
    async with world.sessions() as db:
        got = await service.preview(
            db, settings, "notice", body, {"type": "communities", "ids": ["c001"]}, title="通知"
        )
    length = len(settings.sms_signature) + len("【通知】") + 500
    assert got["segments"] == math.ceil(length / 67) > settings.sms_max_segments  # never cut to 3
    assert got["sms_text"].endswith(body)
    sms = world.expected(False, lambda p: p.community == "c001")["sms"]
    assert got["cost_yuan"] == pytest.approx(sms * got["segments"] * 0.05)


async def test_preview_of_a_phone_list_counts_numbers_nobody_has_yet(world: World):
    known = [p for p in world.people if p.phone][:3]
    texted = next(p for p in world.people if p.texted_from)
    new = ["+8613700000001", "+8613700000002"]
    audience = {"type": "list", "phones": [p.phone for p in known] + [texted.texted_from, *new]}
    async with world.sessions() as db:
        got = await service.preview(db, world.settings(), "notice", BODY, audience)
    want = world.expected(False, lambda p: p in known or p is texted)
    assert got["recipients"]["sms"] == want["sms"] + len(new)
    assert got["recipients"]["wechat"] == want["wechat"]
    async with world.sessions() as db:  # preview writes nothing
        assert (await db.exec(select(Citizen.id).where(col(Citizen.phone).in_(new)))).first() is None


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields,code,names",
    [
        ({"audience": {"type": "districts", "ids": ["karamay", "atlantis"]}}, "unknown_district", "atlantis"),
        ({"audience": {"type": "communities", "ids": ["c999"]}}, "unknown_community", "c999"),
        ({"audience": {"type": "topics", "ids": ["lottery"]}}, "unknown_topic", "lottery"),
        ({"audience": {"type": "communities", "ids": [EMPTY_COMMUNITY]}}, "empty_audience", None),
        ({"audience": {"type": "districts", "ids": []}}, "bad_audience", None),
        ({"audience": {"type": "school"}}, "bad_audience", None),
        ({"audience": {"type": "list", "phones": ["13912345678", "12345", "abc"]}}, "bad_phone", "12345"),
        ({"body": "长" * 501}, "bad_body", "500"),
        ({"body": "   "}, "bad_body", None),
        ({"title": ""}, "bad_title", None),
        ({"title": "题" * 65}, "bad_title", "64"),
        ({"kind": "spam"}, "bad_kind", None),
        ({"idempotency_key": ""}, "bad_key", None),
        ({"scheduled_at": "tomorrow"}, "bad_schedule", None),
    ],
)
async def test_create_refuses_with_a_reason(world: World, fields, code, names):
    fields = {"idempotency_key": key(), **fields}  # a copy: the parameters are shared by both databases
    async with world.sessions() as db:
        with pytest.raises(BroadcastError) as caught:
            await service.create(
                db,
                world.settings(),
                world.staff["bob"],
                kind=fields.pop("kind", "notice"),
                title=fields.pop("title", "通知"),
                body=fields.pop("body", BODY),
                audience=fields.pop("audience", {"type": "all"}),
                **fields,
            )
    assert caught.value.code == code and caught.value.status == 400
    assert caught.value.message and not caught.value.message.isascii()
    if names:
        assert names in caught.value.message


async def test_preview_of_nobody_is_an_error_that_says_why(world: World):
    audience = {"type": "communities", "ids": [EMPTY_COMMUNITY]}
    async with world.sessions() as db:
        with pytest.raises(BroadcastError) as caught:
            await service.preview(db, world.settings(), "notice", BODY, audience)
    assert caught.value.code == "empty_audience"


async def test_roles_are_checked(world: World):
    async with world.sessions() as db:
        for who, kind in [("vic", "notice"), ("amy", "emergency"), ("tom", "notice"), ("bob", "school")]:
            with pytest.raises(BroadcastError) as caught:
                await service.create(
                    db, world.settings(), world.staff[who], kind=kind, title="t", body=BODY,
                    audience={"type": "school"} if kind == "school" else {"type": "all"}, idempotency_key=key(),
                )  # fmt: skip
            assert caught.value.status == 403, (who, kind)


# --- create, approve, schedule ----------------------------------------------------------------


async def test_the_same_request_twice_is_one_broadcast(world: World):
    same = key()
    first = await create(world, idempotency_key=same)
    async with world.sessions() as db:
        again, created = await service.create(
            db, world.settings(), world.staff["bob"], kind="notice", title="停水通知", body=BODY,
            audience={"type": "all"}, idempotency_key=same,
        )  # fmt: skip
        assert (again.id, created) == (first.id, False)
        count = await db.exec(select(Broadcast.id).where(col(Broadcast.idempotency_key) == same))
        assert len(count.all()) == 1


async def test_emergency_needs_a_second_person(world: World):
    settings = world.settings()
    runner = BroadcastRunner(settings, world.sessions, MemoryState(), ListOutbox())
    emergency = await create(world, "admin", kind="emergency", title="暴雪预警", body="今夜有暴雪，请减少外出。")
    assert emergency.status == "pending_approval"
    assert emergency.id not in await runner.due()
    async with world.sessions() as db:
        with pytest.raises(BroadcastError) as caught:
            await service.approve(db, world.staff["admin"], emergency.id)  # the creator, though an admin
        assert (caught.value.code, caught.value.status) == ("self_approval", 409)
        for who in ("bob", "vic", "tom"):
            with pytest.raises(BroadcastError) as caught:
                await service.approve(db, world.staff[who], emergency.id)
            assert caught.value.status == 403
        approved = await service.approve(db, world.staff["amy"], emergency.id)
        assert (approved.status, approved.approved_by) == ("scheduled", world.staff["amy"].id)
        with pytest.raises(BroadcastError) as caught:
            await service.approve(db, world.staff["admin"], emergency.id)
        assert (caught.value.code, caught.value.status) == ("not_pending", 409)
    assert emergency.id in await runner.due()
    outbox = await fan_out(world, emergency.id)
    assert {m.priority for m in outbox.messages} == {"emergency"}


def test_quiet_hours_window():
    def at(hh_mm: str) -> datetime:
        return datetime.fromisoformat(f"2026-11-25T{hh_mm}")

    assert not in_quiet_hours("22:00-07:00", at("21:59"))
    assert in_quiet_hours("22:00-07:00", at("22:00"))
    assert in_quiet_hours("22:00-07:00", at("03:00"))
    assert in_quiet_hours("22:00-07:00", at("06:59"))
    assert not in_quiet_hours("22:00-07:00", at("07:00"))
    assert in_quiet_hours("12:00-14:00", at("13:00")) and not in_quiet_hours("12:00-14:00", at("15:00"))
    assert not in_quiet_hours("", at("23:00"))


async def test_quiet_hours_hold_a_notice_but_not_an_emergency(world: World):
    night = world.settings(fixed_now="2026-11-25T23:30:00")
    notice = await create(world, settings=night)
    urgent = await create(world, "tom", settings=night, kind="school", audience={"type": "school"}, urgent=True)
    emergency = await create(world, "bob", settings=night, kind="emergency")
    async with world.sessions() as db:
        await service.approve(db, world.staff["amy"], emergency.id)
        preview = await service.preview(db, night, "notice", BODY, {"type": "all"})
    assert preview["quiet_hours"] is True
    due = await BroadcastRunner(night, world.sessions, MemoryState(), ListOutbox()).due()
    assert emergency.id in due and urgent.id in due and notice.id not in due
    assert due.index(emergency.id) < due.index(urgent.id)  # emergencies first
    morning = world.settings(fixed_now="2026-11-26T07:00:00")
    assert notice.id in await BroadcastRunner(morning, world.sessions, MemoryState(), ListOutbox()).due()
    for broadcast in (notice, urgent, emergency):
        async with world.sessions() as db:
            await service.cancel(db, world.staff["admin"], broadcast.id)


async def test_a_scheduled_notice_waits_for_its_time(world: World):
    settings = world.settings()
    later = datetime.fromisoformat("2026-11-25T15:00:00")  # city time, naive
    notice = await create(world, scheduled_at=later.isoformat())
    assert notice.scheduled_at == datetime(2026, 11, 25, 7, 0, tzinfo=UTC)  # 15:00 in Karamay (UTC+8)
    assert notice.id not in await BroadcastRunner(settings, world.sessions, MemoryState(), ListOutbox()).due()
    after = world.settings(fixed_now=(later + timedelta(minutes=1)).isoformat())
    assert notice.id in await BroadcastRunner(after, world.sessions, MemoryState(), ListOutbox()).due()
    async with world.sessions() as db:
        await service.cancel(db, world.staff["bob"], notice.id)


# --- fan-out ----------------------------------------------------------------------------------


async def test_fan_out_records_everyone_and_queues_the_reachable(world: World):
    settings = world.settings(broadcast_batch=50)
    notice = await create(world, settings=settings)
    outbox = await fan_out(world, notice.id, settings)
    recorded = await rows(world, notice.id)
    assert [r.citizen_id for r in recorded] == [p.id for p in world.people]  # everyone, once, in order
    for row in recorded:
        channel, address = world.person(row.citizen_id).channel(emergency=False)
        if channel in ("sms", "wechat"):
            assert (row.channel, row.address, row.status) == (channel, address, "queued")
        else:
            assert row.status == "skipped" and row.error in ("已退订短信", "没有手机号或微信")
    want = world.expected(False)
    assert len(outbox.messages) == want["sms"] + want["wechat"]
    assert len({m.ref for m in outbox.messages}) == len(outbox.messages)
    by_ref = {m.ref: m for m in outbox.messages}
    for row in recorded:
        message = by_ref.get(f"recipient:{row.id}")
        if row.status == "skipped":
            assert message is None
            continue
        assert (message.channel, message.to, message.priority) == (row.channel, row.address, "bulk")
        if row.channel == "sms":
            assert message.text == f"{settings.sms_signature}【停水通知】{BODY}" and message.template is None
        else:
            assert message.template == {
                "template_id": "citygw_notice",
                "data": {"title": {"value": "停水通知"}, "content": {"value": BODY}},
            }
    broadcast = await reload(world, notice.id)
    assert broadcast.status == "sending"  # until the dispatcher has sent them all
    assert broadcast.fanout_cursor == FANOUT_DONE and broadcast.recipient_total == len(world.people)
    assert broadcast.enqueued_upto == max(r.id for r in recorded if r.status == "queued")
    async with world.sessions() as db:
        progress = await service.progress(db, notice.id)
    assert progress == {
        "total": len(world.people),
        "queued": want["sms"] + want["wechat"],
        "sent": 0,
        "delivered": 0,
        "failed": 0,
        "skipped": want["opted_out"] + want["none"],
        "acked": 0,
    }
    # a second pass (another worker, a restart) adds nobody and queues nothing again
    assert len((await fan_out(world, notice.id, settings)).messages) == 0
    assert len(await rows(world, notice.id)) == len(world.people)
    async with world.sessions() as db:
        await service.cancel(db, world.staff["bob"], notice.id)


async def test_the_queue_holds_a_window_of_the_audience_so_quiet_hours_stop_a_notice_within_it(world: World):
    day = world.settings(broadcast_batch=20)
    notice = await create(world, settings=day)
    queue = MemoryQueue()
    runner = BroadcastRunner(day, world.sessions, MemoryState(), queue, backlog=50, idle_s=0)
    await runner.run_broadcast(notice.id)
    broadcast = await reload(world, notice.id)
    assert broadcast.fanout_cursor == FANOUT_DONE  # every recipient row is made …
    assert (await queue.depth())["bulk"]["ready"] == 50  # … but only the window is queued

    async def dispatch(count: int) -> list[str]:
        taken = await queue.read("test", count)
        for delivery in taken:
            await queue.ack(delivery)
        return [d.message.ref for d in taken]

    sent = await dispatch(30)
    await runner.run_broadcast(notice.id)  # the dispatcher made room: refilled to the window
    assert (await queue.depth())["bulk"]["ready"] == 50
    sent += await dispatch(50)
    night = world.settings(broadcast_batch=20, fixed_now="2026-11-25T22:00:00")
    quiet = BroadcastRunner(night, world.sessions, MemoryState(), queue, backlog=50, idle_s=0)
    assert await quiet.run_broadcast(notice.id) and (await queue.depth())["bulk"]["ready"] == 0  # paused
    await runner.run_broadcast(notice.id)
    while batch := await dispatch(50):
        sent += batch
        await runner.run_broadcast(notice.id)
    want = world.expected(False)
    assert len(sent) == len(set(sent)) == want["sms"] + want["wechat"]
    async with world.sessions() as db:
        await service.cancel(db, world.staff["bob"], notice.id)


async def test_opted_out_citizens_get_emergencies_but_not_notices(world: World):
    opted_out = [p for p in world.people if p.opted_out and p.district == "dushanzi"]
    audience = {"type": "districts", "ids": ["dushanzi"]}
    notice = await create(world, audience=audience)
    emergency = await create(world, kind="emergency", audience=audience)
    async with world.sessions() as db:
        await service.approve(db, world.staff["amy"], emergency.id)
    notice_to = {m.to for m in (await fan_out(world, notice.id)).messages}
    emergency_out = (await fan_out(world, emergency.id)).messages
    for person in opted_out:
        assert person.phone not in notice_to
        assert person.phone in {m.to for m in emergency_out if m.channel == "sms"}
    skipped = {r.citizen_id: r for r in await rows(world, notice.id) if r.status == "skipped"}
    assert all(skipped[p.id].error == "已退订短信" for p in opted_out)
    for b in (notice, emergency):
        async with world.sessions() as db:
            await service.cancel(db, world.staff["admin"], b.id)


async def test_a_phone_list_reaches_new_numbers_and_known_citizens(world: World):
    texted = next(p for p in world.people if p.texted_from and p.district == "karamay")
    known = next(p for p in world.people if p.phone and not p.opted_out and p.preferred == "sms")
    phones = [texted.texted_from, known.phone, "+8613700000101", "+8613700000102"]
    notice = await create(world, audience={"type": "list", "phones": ["13700000101", *phones]})
    assert notice.audience == {"type": "list", "phones": [phones[2], phones[0], phones[1], phones[3]]}
    sent_to = sorted(m.to for m in (await fan_out(world, notice.id)).messages)
    assert sent_to == sorted(phones)
    async with world.sessions() as db:
        # the number a citizen texted from became their phone: no second citizen for it
        assert (await db.get(Citizen, texted.id)).phone == texted.texted_from
        new = (await db.exec(select(Citizen.id).where(col(Citizen.phone).in_(phones[2:])))).all()
        assert len(new) == 2
        await service.cancel(db, world.staff["bob"], notice.id)


# --- cancel, retry ----------------------------------------------------------------------------


async def test_cancel_mid_way_stops_what_is_not_sent(world: World):
    settings = world.settings(broadcast_batch=20)
    notice = await create(world, settings=settings)
    runner = BroadcastRunner(settings, world.sessions, MemoryState(), outbox := ListOutbox())
    await runner._begin(notice.id)
    for _ in range(3):  # three batches fanned out and queued, then staff cancel
        await runner._fanout_step(notice.id, emergency=False)
        await runner._enqueue_step(notice.id, await runner._begin(notice.id))
    deliveries = Ledger(settings, world.sessions, wires(settings))
    first = outbox.messages[0]
    async with world.sessions() as db:
        await db.exec(update(BroadcastRecipient).where(col(BroadcastRecipient.id) == int(first.ref.split(":")[1])).values(status="sent"))  # fmt: skip
        await db.commit()
        cancelled = await service.cancel(db, world.staff["bob"], notice.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    assert not any([await deliveries.should_send(m.ref) for m in outbox.messages])
    statuses = {r.status for r in await rows(world, notice.id)}
    assert statuses <= {"sent", "skipped"} and "queued" not in statuses
    before = len(await rows(world, notice.id))
    queued_before = len(outbox.messages)
    assert await runner.run_broadcast(notice.id) is False  # not sending any more
    assert len(await rows(world, notice.id)) == before < len(world.people)
    assert len(outbox.messages) == queued_before
    async with world.sessions() as db:
        assert (await service.cancel(db, world.staff["bob"], notice.id)).status == "cancelled"  # again: no-op
        assert (await service.progress(db, notice.id))["sent"] == 1


async def test_many_sends_at_once_are_each_recorded_on_their_own_row(world: World):
    # the dispatcher asks and records for dozens of messages at a time; they share statements
    settings = world.settings()
    notice = await create(world, audience={"type": "communities", "ids": ["c002", "c030"]})
    outbox = await fan_out(world, notice.id, settings)
    ids = [int(m.ref.split(":")[1]) for m in outbox.messages]
    assert len(ids) > 20
    delivered_early, cancelled_elsewhere = ids[3], ids[7]
    async with world.sessions() as db:
        r = BroadcastRecipient
        await db.exec(update(r).where(col(r.id) == delivered_early).values(status="delivered"))
        await db.exec(update(r).where(col(r.id) == cancelled_elsewhere).values(status="skipped"))
        await db.commit()
    deliveries = Ledger(settings, world.sessions, wires(settings))
    due = await asyncio.gather(*(deliveries.should_send(m.ref) for m in outbox.messages))
    assert [rid for rid, yes in zip(ids, due, strict=True) if not yes] == [delivered_early, cancelled_elsewhere]
    await asyncio.gather(
        *(
            deliveries.sent(m.ref, SendResult(provider_id=f"SM{rid}"), m)
            for rid, m in zip(ids, outbox.messages, strict=True)
        )
    )
    by_id = {row.id: row for row in await rows(world, notice.id)}
    for rid, message in zip(ids, outbox.messages, strict=True):
        row = by_id[rid]
        if rid == delivered_early:  # its delivery report came first: it stays delivered
            assert row.status == "delivered"
            continue
        assert (row.status, row.provider_id, row.address) == ("sent", f"SM{rid}", message.to)
    assert not any(await asyncio.gather(*(deliveries.should_send(m.ref) for m in outbox.messages)))


async def test_a_completed_broadcast_cannot_be_cancelled(world: World):
    notice = await create(world, audience={"type": "communities", "ids": ["c030"]})
    await fan_out(world, notice.id)
    async with world.sessions() as db:
        await db.exec(update(BroadcastRecipient).where(col(BroadcastRecipient.broadcast_id) == notice.id, col(BroadcastRecipient.status) == "queued").values(status="sent"))  # fmt: skip
        await db.commit()
    await fan_out(world, notice.id)  # sees nobody queued: completes
    assert (await reload(world, notice.id)).status == "completed"
    async with world.sessions() as db:
        with pytest.raises(BroadcastError) as caught:
            await service.cancel(db, world.staff["bob"], notice.id)
    assert (caught.value.code, caught.value.status) == ("finished", 409)


async def test_retry_failed_queues_the_failed_ones_again_as_a_group(world: World):
    settings = world.settings()
    notice = await create(world, audience={"type": "communities", "ids": ["c002"]})
    first = await fan_out(world, notice.id, settings)
    failed_ids = [int(m.ref.split(":")[1]) for m in first.messages[2:5]]
    async with world.sessions() as db:
        r = BroadcastRecipient
        await db.exec(
            update(r).where(col(r.broadcast_id) == notice.id, col(r.status) == "queued").values(status="sent")
        )
        await db.exec(update(r).where(col(r.id).in_(failed_ids[:2])).values(status="failed", error="permanent: x"))
        await db.exec(update(r).where(col(r.id) == failed_ids[2]).values(status="undelivered"))
        await db.commit()
    await fan_out(world, notice.id, settings)
    assert (await reload(world, notice.id)).status == "completed"
    async with world.sessions() as db:
        assert await service.retry_failed(db, world.staff["bob"], notice.id) == 3
        assert (await service.progress(db, notice.id))["queued"] == 3
        assert [r["id"] for r in await service.recipients(db, notice.id, status="queued")] == failed_ids
    broadcast = await reload(world, notice.id)
    assert broadcast.status == "sending" and broadcast.enqueued_upto == failed_ids[0] - 1
    again = await fan_out(world, notice.id, settings)
    assert sorted(int(m.ref.split(":")[1]) for m in again.messages) == failed_ids
    async with world.sessions() as db:
        assert await service.retry_failed(db, world.staff["bob"], notice.id) == 0
        with pytest.raises(BroadcastError):
            await service.retry_failed(db, world.staff["tom"], notice.id)  # not theirs


# --- school notices ---------------------------------------------------------------------------


async def test_school_notice_reaches_guardians_once_with_their_pupil(world: World):
    notice = await create(
        world,
        "tom",
        kind="school",
        title="家长会",
        body="周五下午三点开家长会。",
        audience={"type": "grade", "grades": [3]},
    )
    assert notice.school_id == "s1" and notice.urgent is False
    outbox = await fan_out(world, notice.id)
    recorded = await rows(world, notice.id)
    grade3 = {s: g for s, (c, grade, g) in world.pupils.items() if c.startswith("s1-3")}
    assert sorted(r.citizen_id for r in recorded) == sorted(set(grade3.values()))  # citizen 0: two pupils, one row
    for row in recorded:
        assert grade3[row.student_id] == row.citizen_id
    assert {m.priority for m in outbox.messages} == {"bulk"}
    async with world.sessions() as db:
        page = await service.recipients(db, notice.id, limit=5)
        assert page[0]["student_name"].startswith("学生") and "***" in page[0]["address"]
        mine = await service.list_(db, world.staff["tom"])
        assert notice.id in [b.id for b in mine] and all(b.school_id == "s1" for b in mine)
        assert notice.id not in [b.id for b in await service.list_(db, world.staff["sue"])]
        with pytest.raises(BroadcastError) as caught:  # another school's class
            await service.create(
                db, world.settings(), world.staff["tom"], kind="school", title="t", body="b",
                audience={"type": "classes", "ids": ["s2-3-1"]}, idempotency_key=key(),
            )  # fmt: skip
        assert caught.value.code == "unknown_class" and "s2-3-1" in caught.value.message
        with pytest.raises(BroadcastError) as caught:
            await service.create(
                db, world.settings(), world.staff["tom"], kind="school", title="t", body="b",
                audience={"type": "grade", "grades": [6]}, idempotency_key=key(),
            )  # fmt: skip
        assert caught.value.code == "unknown_grade"
        with pytest.raises(BroadcastError) as caught:
            await service.create(
                db, world.settings(), world.staff["tom"], kind="school", title="t", body="b",
                audience={"type": "school"}, idempotency_key=key(), school_id="s2",
            )  # fmt: skip
        assert caught.value.status == 403
        await service.cancel(db, world.staff["tom"], notice.id)


async def test_remind_resends_to_parents_who_did_not_acknowledge(world: World):
    settings = world.settings()
    notice = await create(
        world, "tom", kind="school", title="春游", body="周三春游，请回复确认。", urgent=True,
        audience={"type": "classes", "ids": ["s1-3-1"]},
    )  # fmt: skip
    first = await fan_out(world, notice.id, settings)
    assert {m.priority for m in first.messages} == {"reply"}  # urgent school notice
    recorded = await rows(world, notice.id)
    reachable = [r for r in recorded if r.status == "queued"]
    async with world.sessions() as db:
        r = BroadcastRecipient
        await db.exec(update(r).where(col(r.broadcast_id) == notice.id, col(r.status) == "queued").values(status="delivered"))  # fmt: skip
        await db.exec(update(r).where(col(r.id) == reachable[0].id).values(acked_at=datetime.now(UTC)))
        await db.commit()
        reminded = await service.remind(db, settings, world.staff["tom"], notice.id)
        assert reminded == len(reachable) - 1
        assert [x["id"] for x in await service.recipients(db, notice.id, status="acked")] == [reachable[0].id]
        assert (await service.progress(db, notice.id))["acked"] == 1
        with pytest.raises(BroadcastError):
            await service.remind(db, settings, world.staff["sue"], notice.id)
    again = await fan_out(world, notice.id, settings)
    assert len(again.messages) == reminded
    assert all(
        "（再次提醒）" in (m.text if m.channel == "sms" else m.template["data"]["title"]["value"])
        for m in again.messages
    )
    async with world.sessions() as db:
        await service.cancel(db, world.staff["tom"], notice.id)


async def test_list_and_get(world: World):
    notice = await create(world, audience={"type": "communities", "ids": ["c031"]})
    async with world.sessions() as db:
        assert (await service.get(db, notice.id)).id == notice.id
        with pytest.raises(BroadcastError) as caught:
            await service.get(db, 10**9)
        assert caught.value.status == 404
        listed = await service.list_(db, world.staff["vic"], kind="notice", limit=3)
        assert listed[0].id == notice.id and all(b.kind == "notice" for b in listed) and len(listed) <= 3
        await service.cancel(db, world.staff["bob"], notice.id)


def test_districts_fixture_is_what_the_tests_assume():
    assert set(DISTRICTS) == {"karamay", "dushanzi"}
