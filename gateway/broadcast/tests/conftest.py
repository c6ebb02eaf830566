"""A small city in a fresh database per test module, on SQLite and on PostgreSQL: two districts with
two communities each, a few hundred citizens of every kind the channel rule distinguishes, staff of
every role and two schools with classes, pupils and guardians. `World` also keeps the same facts in
Python, so tests can work out who should get what without asking the code under test."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import PRIORITIES, Outgoing
from gateway.config import Settings
from gateway.db.engine import async_engine, session_factory, sync_engine
from gateway.db.models import (
    ChannelIdentity,
    Citizen,
    Community,
    District,
    Guardian,
    School,
    SchoolClass,
    StaffUser,
    Student,
    Subscription,
)
from tests.stack import drop_database, empty_database

FIXED_NOW = "2026-11-25T10:00:00"  # a Wednesday morning, outside quiet hours
DISTRICTS = {"karamay": ["c001", "c002"], "dushanzi": ["c030", "c031"]}
EMPTY_COMMUNITY = "c003"  # exists, nobody lives there
POPULATION = 240


def create_database(kind: str, directory: Path) -> str:
    return empty_database(kind, directory, file="broadcast.db", prefix="citygw_bc")


@dataclass
class Person:
    """One citizen as the fixture made them."""

    id: int
    community: str
    phone: str | None = None  # Citizen.phone
    texted_from: str | None = None  # an SMS identity only
    openid: str | None = None
    preferred: str = "sms"
    opted_out: bool = False
    topics: tuple[str, ...] = ()
    push: str | None = None  # a live web push subscription's id (the fixture makes none)

    @property
    def district(self) -> str:
        return next(d for d, cs in DISTRICTS.items() if self.community in cs)

    def channel(self, emergency: bool) -> tuple[str, str]:
        """(channel, address) by the documented rule, written out independently of the SQL."""
        phone = self.phone or self.texted_from
        if self.preferred == "wechat" and self.openid:
            return "wechat", self.openid
        if self.preferred == "webpush" and self.push:
            return "webpush", self.push
        if phone and (emergency or not self.opted_out):
            return "sms", phone
        if self.openid:
            return "wechat", self.openid
        if self.push:
            return "webpush", self.push
        return ("opted_out", phone) if phone else ("none", "")


@dataclass
class World:
    kind: str
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    people: list[Person] = field(default_factory=list)
    staff: dict[str, StaffUser] = field(default_factory=dict)
    pupils: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # student → (class, grade, guardian)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.url,
            "fixed_now": FIXED_NOW,
            "sms_rate": 0,
            "broadcast_batch": 25,
            "queue_prefix": f"bc-test-{uuid.uuid4().hex[:8]}",
            "twilio_account_sid": None,
            "wechat_template_id": None,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    def expected(self, emergency: bool, who: Callable[[Person], bool] = lambda p: True) -> dict[str, int]:
        out = {"sms": 0, "wechat": 0, "webpush": 0, "opted_out": 0, "none": 0}
        for person in self.people:
            if who(person):
                out[person.channel(emergency)[0]] += 1
        return out

    def person(self, citizen_id: int) -> Person:
        return next(p for p in self.people if p.id == citizen_id)


def _make(i: int) -> dict[str, Any]:
    """Citizen i's kind, cycling through every case the channel rule distinguishes (20 per cycle)."""
    communities = [c for cs in DISTRICTS.values() for c in cs]
    phone = f"+86139{i:08d}"
    slot = i % 20
    person: dict[str, Any] = {"community": communities[i % 4], "phone": phone}
    if slot in (6, 16):
        person.update(preferred="wechat", openid=f"oWx{i:025d}")  # prefers WeChat and has it
    elif slot in (7, 17):
        person.update(opted_out=True)  # texted TD
    elif slot in (8, 18):
        person.update(phone=None, texted_from=phone)  # known only from texting us
    elif slot == 9:
        person.update(phone=None)  # no way to reach them
    elif slot == 19:
        person.update(phone=None, openid=f"oWx{i:025d}")  # WeChat only, prefers SMS
    elif slot == 5:
        person.update(preferred="wechat")  # prefers WeChat but never followed: SMS
    topics = []
    if i % 3 == 0:
        topics.append("air_quality_alerts")
    if i % 5 == 0:
        topics.append("weather_alerts")
    person["topics"] = tuple(topics)
    return person


def build(url: str, population: int) -> tuple[list[Person], dict[str, int], dict[str, tuple[str, int, int]]]:
    engine = sync_engine(url)
    people: list[Person] = []
    with Session(engine) as db:
        for district in DISTRICTS:
            db.add(District(id=district, name=district))
        db.flush()  # no ORM relationships: parents must be flushed before their children
        for district, communities in DISTRICTS.items():
            for community in communities:
                db.add(Community(id=community, name=community, district_id=district))
        db.add(Community(id=EMPTY_COMMUNITY, name="空社区", district_id="karamay"))
        db.flush()
        for i in range(population):
            spec = _make(i)
            citizen = Citizen(
                phone=spec["phone"],
                community_id=spec["community"],
                sms_opted_out=spec.get("opted_out", False),
                preferred_channel=spec.get("preferred", "sms"),
            )
            db.add(citizen)
            db.flush()
            person = Person(id=citizen.id, **spec)
            if person.openid:
                db.add(ChannelIdentity(channel="wechat", address=person.openid, citizen_id=citizen.id))
            if person.texted_from:
                db.add(ChannelIdentity(channel="sms", address=person.texted_from, citizen_id=citizen.id))
            for topic in person.topics:
                db.add(Subscription(citizen_id=citizen.id, topic=topic))
            people.append(person)
        staff = {
            name: StaffUser(username=name, display_name=name, password_hash="-", role=role)
            for name, role in [
                ("admin", "admin"),
                ("bob", "broadcaster"),
                ("bea", "broadcaster"),
                ("amy", "approver"),
                ("vic", "viewer"),
            ]
        }
        db.add(School(id="s1", name="第一小学", district_id="karamay"))
        db.add(School(id="s2", name="第二小学", district_id="dushanzi"))
        db.flush()
        staff["tom"] = StaffUser(
            username="tom", display_name="汤老师", password_hash="-", role="school", school_id="s1"
        )
        staff["sue"] = StaffUser(
            username="sue", display_name="苏老师", password_hash="-", role="school", school_id="s2"
        )
        for user in staff.values():
            db.add(user)
        classes = [("s1-3-1", "s1", 3), ("s1-3-2", "s1", 3), ("s1-4-1", "s1", 4), ("s2-3-1", "s2", 3)]
        for class_id, school, grade in classes:
            db.add(SchoolClass(id=class_id, school_id=school, grade=grade, name=f"{grade}年级{class_id[-1]}班"))
        db.flush()
        pupils: dict[str, tuple[str, int, int]] = {}
        # pupil k of 40: s1 classes get 10 each, s2 gets 10; guardian = citizen k (citizen 0 has two pupils)
        for k in range(40):
            class_id, _, grade = classes[k // 10]
            student = f"st{k:03d}"
            db.add(Student(id=student, name=f"学生{k}", class_id=class_id))
            guardian = people[0 if k == 11 else k].id
            pupils[student] = (class_id, grade, guardian)
        db.flush()
        for student, (_, _, guardian) in pupils.items():
            db.add(Guardian(student_id=student, citizen_id=guardian))
        db.commit()
        ids = {name: user.id for name, user in staff.items()}
    engine.dispose()
    return people, ids, pupils


def _engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        return async_engine(url)
    # gateway.db.engine's default pool (5 + 10 overflow) opens and closes a PostgreSQL connection for
    # every session beyond five at once, and each commit waits for an fsync (~20 ms on this disk): a
    # dispatcher with 8 sends in flight plus status callbacks spends its time on both. The test
    # database needs no durability, so: a bigger pool and asynchronous commits.
    return create_async_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1),
        pool_size=20,
        connect_args={"options": "-c synchronous_commit=off"},
    )


@pytest.fixture(scope="module")
def population() -> int:
    return POPULATION


@contextlib.asynccontextmanager
async def open_world(kind: str, directory: Path, population: int = POPULATION) -> AsyncIterator[World]:
    url = create_database(kind, directory)
    people, staff_ids, pupils = build(url, population)
    engine = _engine(url)
    w = World(kind, url, engine, session_factory(engine), people, pupils=pupils)
    async with w.sessions() as db:
        for name, staff_id in staff_ids.items():
            w.staff[name] = await db.get(StaffUser, staff_id)
    try:
        yield w
    finally:
        await engine.dispose()
        drop_database(url)


@pytest_asyncio.fixture(scope="module", params=["sqlite", "postgres"])
async def world(request, tmp_path_factory, population: int) -> AsyncIterator[World]:
    async with open_world(request.param, tmp_path_factory.mktemp(f"bc-{request.param}"), population) as w:
        yield w


def drained() -> dict[str, dict[str, int]]:
    """The depth of a test outbox: what was added counts as sent at once, so the fan-out's backlog
    window never holds it back."""
    return {p: {"ready": 0, "pending": 0, "delayed": 0} for p in PRIORITIES}


class ListOutbox:
    """An outbound queue that only records what was added (for fan-out tests without a dispatcher)."""

    def __init__(self) -> None:
        self.messages: list[Outgoing] = []

    async def add(self, message: Outgoing) -> str:
        self.messages.append(message)
        return str(len(self.messages))

    async def add_many(self, messages: Any) -> int:
        batch = list(messages)
        self.messages.extend(batch)
        return len(batch)

    async def depth(self) -> dict[str, dict[str, int]]:
        return drained()

    async def close(self) -> None:
        return None


def key() -> str:
    return uuid.uuid4().hex
