"""Broadcasts end to end: fan-out → queue → dispatcher → the real Twilio and WeChat senders → the local
provider servers → signed status callbacks → recipient rows and progress. Small audiences: each
message costs a few round trips."""

from __future__ import annotations

import asyncio

import pytest

from gateway.broadcast import service
from gateway.broadcast.render import ACK_PROMPT
from gateway.db.models import Citizen

from .conftest import Person, World
from .harness import line, running, until
from .test_service import BODY, create, rows

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:twilio")  # the library's own


def reachable_by_sms(world: World, count: int, **where: object) -> list[Person]:
    found = [p for p in world.people if p.phone and p.channel(False)[0] == "sms"]
    return [p for p in found if all(getattr(p, k) == v for k, v in where.items())][:count]


async def test_each_citizen_once_on_their_channel_then_delivered(world: World):
    who = (
        reachable_by_sms(world, 12) + [p for p in world.people if p.phone and p.preferred == "wechat" and p.openid][:3]
    )
    audience = {"type": "list", "phones": [p.phone for p in who]}  # listed numbers, reached on their channel
    sms = {p.channel(False)[1] for p in who if p.channel(False)[0] == "sms"}
    wechat = {p.channel(False)[1] for p in who if p.channel(False)[0] == "wechat"}
    assert sms and wechat
    async with line(world) as pipe:
        notice = await create(world, audience=audience, settings=pipe.settings)
        async with running(pipe.runner, pipe.dispatcher()):
            await pipe.until(notice.id)
            progress = await pipe.until_progress(notice.id, "delivered", len(sms))
        assert pipe.sms_count() == dict.fromkeys(sms, 1)
        assert pipe.wechat_count() == dict.fromkeys(wechat, 1)
        text = f"{pipe.settings.sms_signature}【停水通知】{BODY}"
        assert {m.body for m in pipe.twilio.messages} == {text}
        assert {(m.kind, m.template_id) for m in pipe.wechat.messages} == {("template", "citygw_notice")}
        assert pipe.wechat.messages[0].data == {"title": {"value": "停水通知"}, "content": {"value": BODY}}
        assert progress["queued"] == 0 and progress["failed"] == 0
        assert progress["delivered"] == len(sms)  # Twilio reported them; WeChat templates stay "sent"
        assert progress["sent"] == len(wechat)
        recorded = {r.citizen_id: r for r in await rows(world, notice.id)}
        sids = {m.to: m.sid for m in pipe.twilio.messages}
        for person in who:
            channel, address = person.channel(False)
            if channel == "sms":
                assert recorded[person.id].provider_id == sids[address]
                assert recorded[person.id].attempts == 1


async def test_wechat_failure_falls_back_to_sms(world: World):
    # grade 3 of school s1: guardians include a WeChat user with a phone and one with WeChat only
    guardians = {g for c, _, g in world.pupils.values() if c.startswith("s1-3")}
    people = [world.person(g) for g in guardians]
    with_phone = next(p for p in people if p.openid and p.phone and p.preferred == "wechat")
    wechat_only = next(p for p in people if p.openid and not p.phone and not p.texted_from)
    async with line(world) as pipe:
        pipe.wechat.unsubscribed(with_phone.openid)  # 43004: the parent unfollowed the account
        pipe.wechat.unsubscribed(wechat_only.openid)
        notice = await create(
            world, "tom", kind="school", audience={"type": "grade", "grades": [3]}, settings=pipe.settings
        )
        async with running(pipe.runner, pipe.dispatcher()):
            await pipe.until(notice.id)
        assert pipe.sms_count()[with_phone.phone] == 1
        assert with_phone.openid not in pipe.wechat_count()
        recorded = {r.citizen_id: r for r in await rows(world, notice.id)}
        fell_back = recorded[with_phone.id]
        assert (fell_back.channel, fell_back.address) == ("sms", with_phone.phone)
        assert fell_back.status in ("sent", "delivered") and "微信" in fell_back.error
        assert recorded[wechat_only.id].status == "failed"  # no phone to fall back to
        sms = next(m for m in pipe.twilio.messages if m.to == with_phone.phone)
        assert sms.body == f"{pipe.settings.sms_signature}【停水通知】{BODY}{ACK_PROMPT}"  # parents reply 收到


async def test_emergency_overtakes_a_queued_notice(world: World):
    notice_to = [p.phone for p in reachable_by_sms(world, 12, community="c030")]
    opted_out = next(p for p in world.people if p.opted_out and p.phone)
    emergency_to = [opted_out.phone, *(p.phone for p in reachable_by_sms(world, 4, community="c031"))]
    async with line(world) as pipe:
        notice = await create(world, audience={"type": "list", "phones": notice_to}, settings=pipe.settings)
        emergency = await create(
            world, kind="emergency", title="沙尘暴预警", body="请关好门窗。", settings=pipe.settings,
            audience={"type": "list", "phones": emergency_to},
        )  # fmt: skip
        async with world.sessions() as db:
            await service.approve(db, world.staff["amy"], emergency.id)
        assert await pipe.runner.run_broadcast(notice.id)  # the notice is queued first …
        assert await pipe.runner.run_broadcast(emergency.id)  # … then the emergency
        async with running(pipe.runner, pipe.dispatcher(concurrency=1)):
            await pipe.until(notice.id)
            await pipe.until(emergency.id)
        order = [m.to for m in pipe.twilio.messages]
        assert sorted(order[: len(emergency_to)]) == sorted(emergency_to)  # every emergency before any notice
        assert pipe.sms_count()[opted_out.phone] == 1  # opted out of notices, not of warnings
        assert sorted(order[len(emergency_to) :]) == sorted(notice_to)


async def test_failed_sends_are_retried_as_a_group(world: World):
    targets = reachable_by_sms(world, 8, community="c002")
    failing = targets[:3]
    async with line(world) as pipe:
        for person in failing:
            pipe.twilio.fail(to=person.phone, code=21211)  # invalid number, once
        audience = {"type": "list", "phones": [p.phone for p in targets]}
        notice = await create(world, audience=audience, settings=pipe.settings)
        async with running(pipe.runner, pipe.dispatcher()):
            await pipe.until(notice.id)
            async with world.sessions() as db:
                assert (await service.progress(db, notice.id))["failed"] == 3
                failed = await service.recipients(db, notice.id, status="failed")
                assert {r["citizen_id"] for r in failed} == {p.id for p in failing}
                assert await service.retry_failed(db, world.staff["bob"], notice.id) == 3
            await pipe.until(notice.id, "sending")
            await pipe.until(notice.id)
        async with world.sessions() as db:
            progress = await service.progress(db, notice.id)
        assert progress["failed"] == 0 and progress["queued"] == 0
        assert pipe.sms_count() == {p.phone: 1 for p in targets}  # refused the first time: one SMS each


async def test_cancel_while_sending_stops_the_rest(world: World):
    async with line(world, broadcast_batch=10) as pipe:
        pipe.twilio.configure(latency_ms=30)
        notice = await create(world, settings=pipe.settings)
        async with running(pipe.runner, pipe.dispatcher(concurrency=2)):
            await until(lambda: len(pipe.twilio.messages) >= 3)
            async with world.sessions() as db:
                await service.cancel(db, world.staff["bob"], notice.id)
            await asyncio.sleep(0.2)  # sends already in flight finish
            sent_after_cancel = len(pipe.twilio.messages) + len(pipe.wechat.messages)
            await asyncio.sleep(0.3)
            assert len(pipe.twilio.messages) + len(pipe.wechat.messages) == sent_after_cancel
        async with world.sessions() as db:
            progress = await service.progress(db, notice.id)
            assert (await service.get(db, notice.id)).status == "cancelled"
        reachable = sum(world.expected(False)[c] for c in ("sms", "wechat"))
        assert progress["queued"] == 0
        assert progress["sent"] + progress["delivered"] == sent_after_cancel < reachable


async def test_status_callbacks_record_undelivered_and_opt_outs(world: World):
    undelivered, stopped, fine = reachable_by_sms(world, 3, community="c031")
    async with line(world) as pipe:
        pipe.twilio.fail(to=undelivered.phone, code=30003)  # accepted, then reported undelivered
        pipe.twilio.opt_out(stopped.phone)  # 21610 at send time: the carrier stopped us
        audience = {"type": "list", "phones": [undelivered.phone, stopped.phone, fine.phone]}
        notice = await create(world, audience=audience, settings=pipe.settings)
        async with running(pipe.runner, pipe.dispatcher()):
            await pipe.until(notice.id)
            assert (await pipe.until_progress(notice.id, "failed", 2))["failed"] == 2
            assert (await pipe.until_progress(notice.id, "delivered", 1))["delivered"] == 1
        recorded = {r.citizen_id: r for r in await rows(world, notice.id)}
        assert recorded[undelivered.id].status == "undelivered" and "30003" in recorded[undelivered.id].error
        assert recorded[stopped.id].status == "failed" and recorded[stopped.id].error.startswith("opted_out")
        async with world.sessions() as db:
            assert (await db.get(Citizen, stopped.id)).sms_opted_out is True
            await db.exec(
                Citizen.__table__.update().where(Citizen.__table__.c.id == stopped.id).values(sms_opted_out=False)
            )
            await db.commit()
            # the group retry covers undelivered messages too
            assert await service.retry_failed(db, world.staff["admin"], notice.id) == 2
            await service.cancel(db, world.staff["admin"], notice.id)
