"""The demo population: the generator (deterministic, prefix-stable, the shares it promises) and the
bulk seed (counts, idempotence, speed) on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from gateway.db.engine import sync_engine
from gateway.db.models import (
    ChannelIdentity,
    Citizen,
    Guardian,
    School,
    SchoolClass,
    Student,
    Subscription,
)
from gateway.db.people import (
    PHONE_PREFIX,
    SCHOOLS,
    phone,
    residents,
    schools,
    subscription_topics,
)
from gateway.db.seed import seed_population
from intents.city.pack import load_pack
from tests.stack import drop_database, fresh_database

PACK = load_pack()
COMMUNITIES = [c.id for c in PACK.communities]
SEED_20K_BUDGET_S = 20.0  # typically 2–4 s; generous because the test machine's two cores are shared


def test_residents_are_deterministic_and_the_same_whatever_the_count():
    first = list(residents(COMMUNITIES, 500, seed=7))
    assert first == list(residents(COMMUNITIES, 500, seed=7))
    assert list(residents(COMMUNITIES, 200, seed=7)) == first[:200]  # --residents N only adds
    assert first != list(residents(COMMUNITIES, 500, seed=8))


def test_residents_have_the_promised_shares():
    people = list(residents(COMMUNITIES, 20_000))
    phones = [r.phone for r in people]
    assert len(set(phones)) == len(phones)
    assert all(re.fullmatch(r"\+86139\d{8}", p) for p in phones)
    assert len({r.openid for r in people if r.openid}) == sum(1 for r in people if r.openid)
    wechat = sum(1 for r in people if r.preferred_channel == "wechat") / len(people)
    assert 0.32 < wechat < 0.38
    assert all((r.openid is not None) == (r.preferred_channel == "wechat") for r in people)
    assert 0.04 < sum(r.sms_opted_out for r in people) / len(people) < 0.06
    assert 0.17 < sum(1 for r in people if r.topics) / len(people) < 0.23
    topics = set(subscription_topics())
    assert topics >= {"air_quality_alerts", "weather_alerts"}  # the catalogue's ids, nothing invented
    assert {t for r in people for t in r.topics} == topics
    assert set(Counter(r.community_id for r in people)) == set(COMMUNITIES)  # all 84 communities


def test_schools_have_classes_students_and_guardians():
    rows = schools(2_000)
    assert rows == schools(2_000)
    assert len(rows.schools) == 6
    assert {s["district_id"] for s in rows.schools} == {d.id for d in PACK.districts}
    per_grade = Counter((c["school_id"], c["grade"]) for c in rows.classes)
    assert set(per_grade) == {(s[0], g) for s in SCHOOLS for g in range(1, 7)}
    assert set(per_grade.values()) <= {2, 3}
    sizes = Counter(s["class_id"] for s in rows.students)
    assert set(sizes) == {c["id"] for c in rows.classes}
    assert all(27 <= n <= 33 for n in sizes.values())
    ids = [s["id"] for s in rows.students]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"KS20(2[1-6])\d{6}", i) for i in ids)
    guardians = Counter(student for student, _, _ in rows.guardians)
    assert set(guardians) == set(ids) and set(guardians.values()) == {1, 2}
    assert {index for _, index, _ in rows.guardians} <= set(range(2_000))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    url = fresh_database(request.param, tmp_path)
    yield url
    drop_database(url)


def _counts(url: str) -> dict[str, int]:
    engine = sync_engine(url)
    with Session(engine) as db:

        def count(model, *where) -> int:
            return db.exec(select(func.count()).select_from(model).where(*where)).one()

        counts = {
            "residents": count(Citizen, col(Citizen.phone).startswith(PHONE_PREFIX)),
            "sms": count(ChannelIdentity, ChannelIdentity.channel == "sms"),
            "wechat": count(ChannelIdentity, ChannelIdentity.channel == "wechat"),
            "wechat_preferred": count(Citizen, Citizen.preferred_channel == "wechat"),
            "subscriptions": count(Subscription),
            "schools": count(School),
            "classes": count(SchoolClass),
            "students": count(Student),
            "guardians": count(Guardian),
            "verified": count(Guardian, col(Guardian.verified).is_(True)),
        }
    engine.dispose()
    return counts


def test_seed_inserts_20k_residents_quickly_and_reseeding_adds_nothing(database):
    started = time.perf_counter()
    added = seed_population(database, PACK, 20_000)
    took = time.perf_counter() - started
    assert took < SEED_20K_BUDGET_S, f"20,000 residents took {took:.1f} s"
    counts = _counts(database)
    assert counts["residents"] == counts["sms"] == added["residents"] == 20_000
    assert counts["wechat"] == counts["wechat_preferred"] == added["identities"] - 20_000
    assert counts["subscriptions"] == added["subscriptions"] > 0
    assert (counts["schools"], counts["classes"], counts["students"]) == (
        added["schools"],
        added["classes"],
        added["students"],
    )
    assert counts["guardians"] == counts["verified"] == added["guardians"] >= counts["students"]

    again = seed_population(database, PACK, 20_000)
    assert set(again.values()) == {0}
    assert _counts(database) == counts

    more = seed_population(database, PACK, 21_000)  # more residents later: only the new ones, same schools
    assert more["residents"] == 1_000 and more["students"] == 0
    grown = _counts(database)
    assert grown["residents"] == 21_000 and grown["guardians"] == counts["guardians"]


def test_guardians_are_residents_reachable_by_their_phone(database):
    seed_population(database, PACK, 2_000)
    engine = sync_engine(database)
    with Session(engine) as db:
        rows = db.exec(
            select(Guardian.student_id, Citizen.phone, ChannelIdentity.citizen_id)
            .join(Citizen, col(Citizen.id) == col(Guardian.citizen_id))
            .join(
                ChannelIdentity,
                (col(ChannelIdentity.address) == col(Citizen.phone)) & (col(ChannelIdentity.channel) == "sms"),
            )
        ).all()
        students = db.exec(select(func.count()).select_from(Student)).one()
    engine.dispose()
    pool = {phone(i) for i in range(2_000)}
    assert {p for _, p, _ in rows} <= pool
    assert len({s for s, _, _ in rows}) == students  # every student has a guardian with a phone
