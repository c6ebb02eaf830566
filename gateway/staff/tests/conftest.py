"""The real app (gateway.app.create_app) on a migrated SQLite file with a small city in it, and staff
clients, each with its own cookie jar, signed in as one account of every role.

The gateway runs in-process behind aiohttp's TestServer on 127.0.0.1; nothing calls Rasa (the URL
points at a closed port). One gateway per test module keeps argon2's deliberate slowness affordable.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from sqlmodel import Session
from yarl import URL

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.engine import sync_engine
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
from gateway.staff.passwords import hash_password
from tests.fake_rasa import make_template_database

PASSWORD = "correct horse 9"
# username → (role, school)
ACCOUNTS = {
    "admin": ("admin", None),
    "sender": ("broadcaster", None),
    "approver": ("approver", None),
    "viewer": ("viewer", None),
    "teacher1": ("school", "s1"),
    "teacher2": ("school", "s2"),
    "agent1": ("agent", None),
    "agent2": ("agent", None),
}
ROLE_USER = {
    "admin": "admin",
    "broadcaster": "sender",
    "approver": "approver",
    "viewer": "viewer",
    "school": "teacher1",
    "agent": "agent1",
}


def seed_city(url: str) -> None:
    """Two districts, three communities, two schools with classes, students and guardians."""
    engine = sync_engine(url)
    with Session(engine) as db:
        db.add_all([District(id="d1", name="一区"), District(id="d2", name="二区")])
        db.flush()
        db.add_all(
            [
                Community(id="c1", name="甲社区", district_id="d1"),
                Community(id="c2", name="乙社区", district_id="d1"),
                Community(id="c3", name="丙社区", district_id="d2"),
            ]
        )
        db.add_all(
            [School(id="s1", name="第一小学", district_id="d1"), School(id="s2", name="第二小学", district_id="d2")]
        )
        db.flush()
        db.add_all(
            [
                SchoolClass(id="s1-3-1", school_id="s1", grade=3, name="三年级1班"),
                SchoolClass(id="s1-4-1", school_id="s1", grade=4, name="四年级1班"),
                SchoolClass(id="s2-3-1", school_id="s2", grade=3, name="三年级1班"),
            ]
        )
        db.flush()
        db.add_all(
            [
                Student(id="S1001", name="张小明", class_id="s1-3-1"),
                Student(id="S1002", name="李小红", class_id="s1-4-1"),
                Student(id="S2001", name="王小刚", class_id="s2-3-1"),
            ]
        )
        citizens = [
            Citizen(phone=f"+861390000{i:04d}", community_id=("c1", "c2", "c3")[i % 3], display_name=f"居民{i}")
            for i in range(1, 13)
        ]
        db.add_all(citizens)
        db.flush()
        db.add_all([ChannelIdentity(channel="sms", address=c.phone, citizen_id=c.id) for c in citizens])
        db.add(Subscription(citizen_id=citizens[0].id, topic="air_quality_alerts"))
        db.add_all(
            [
                Guardian(student_id="S1001", citizen_id=citizens[0].id, verified=True),
                Guardian(student_id="S1002", citizen_id=citizens[1].id, verified=True),
                Guardian(student_id="S2001", citizen_id=citizens[2].id, verified=True),
            ]
        )
        for username, (role, school) in ACCOUNTS.items():
            db.add(
                StaffUser(
                    username=username,
                    display_name=f"{username}名",
                    password_hash=hash_password(PASSWORD),
                    role=role,
                    school_id=school,
                )
            )
        db.commit()
    engine.dispose()


@pytest.fixture(scope="session")
def city_template(tmp_path_factory) -> Path:
    path = make_template_database(tmp_path_factory.mktemp("staff-template"))
    seed_city(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any = None
    cookies: Any = None


@dataclass
class StaffClient:
    """One browser: its own cookie jar, and the CSRF token it was given at sign-in."""

    http: aiohttp.ClientSession
    base: URL
    csrf: str | None = None
    username: str | None = None

    async def request(
        self, method: str, path: str, *, csrf: bool | str = True, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Reply:
        headers = dict(headers or {})
        if csrf is True and self.csrf and method not in ("GET", "HEAD"):
            headers["X-CSRF-Token"] = self.csrf
        elif isinstance(csrf, str):
            headers["X-CSRF-Token"] = csrf
        async with self.http.request(method, self.base.join(URL(path)), headers=headers, **kwargs) as response:
            text = await response.text()
            try:
                body = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return Reply(response.status, body, response.headers, response.cookies)

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Reply:
        if json is not None:
            kwargs["json"] = json
        return await self.request("POST", path, **kwargs)

    async def login(self, username: str, password: str = PASSWORD) -> Reply:
        reply = await self.post("/api/staff/login", {"username": username, "password": password})
        if reply.status == 200:
            self.csrf, self.username = reply.body["csrf_token"], username
        return reply

    def cookie(self) -> str | None:
        for morsel in self.http.cookie_jar:
            if morsel.key == "citygw_staff":
                return morsel.value
        return None


@dataclass
class StaffGateway:
    server: TestServer
    db_path: Path
    settings: Settings
    _clients: list[aiohttp.ClientSession] = field(default_factory=list)

    @property
    def app(self):
        return self.server.app

    def client(self) -> StaffClient:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # unsafe: cookies for an IP host
        self._clients.append(http)
        return StaffClient(http, self.server.make_url("/"))

    async def signed_in(self, username: str) -> StaffClient:
        client = self.client()
        reply = await client.login(username)
        assert reply.status == 200, reply.body
        return client

    def query(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql, params)]

    def execute(self, sql: str, *params: Any) -> None:
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn:
            conn.execute(sql, params)
            conn.commit()

    def audit(self, action: str | None = None) -> list[dict[str, Any]]:
        if action is None:
            return self.query("SELECT * FROM auditlog ORDER BY id")
        return self.query("SELECT * FROM auditlog WHERE action = ? ORDER BY id", action)

    def staff_id(self, username: str) -> int:
        return self.query("SELECT id FROM staffuser WHERE username = ?", username)[0]["id"]

    async def close(self) -> None:
        for http in self._clients:
            await http.close()
        await self.server.close()


def routed_paths(gw: StaffGateway) -> set[tuple[str, str]]:
    """(method, path) of every route the app registered under /api/staff, regex parts dropped; the
    catch-all (method "*") that answers unknown paths with a JSON 404 is not an endpoint."""
    found = set()
    for route in gw.app.router.routes():
        path = re.sub(r"\{(\w+):[^{}]+\}", r"{\1}", route.resource.canonical if route.resource else "")
        if not path.startswith("/api/staff") or route.method == "HEAD":
            continue
        if (route.method, path) == ("*", "/api/staff/{tail}"):
            continue
        found.add((route.method, path))
    return found


@contextlib.asynccontextmanager
async def running(template: Path, directory: Path, **overrides: Any) -> AsyncIterator[StaffGateway]:
    db_path = directory / f"staff-{uuid.uuid4().hex[:8]}.db"
    shutil.copyfile(template, db_path)
    options: dict[str, Any] = {
        "database_url": f"sqlite:///{db_path}",
        "redis_url": None,
        "rasa_url": "http://127.0.0.1:9",  # never called by these tests
        "dispatch_in_process": False,  # nothing is delivered here: the API, not the dispatcher, is tested
        **overrides,
    }
    settings = Settings(**options)
    server = TestServer(create_app(settings), host="127.0.0.1")
    await server.start_server()
    gw = StaffGateway(server, db_path, settings)
    try:
        yield gw
    finally:
        await gw.close()


@pytest_asyncio.fixture(scope="module")
async def gw(city_template, tmp_path_factory) -> AsyncIterator[StaffGateway]:
    async with running(city_template, tmp_path_factory.mktemp("staff-gw")) as gateway:
        yield gateway


@pytest_asyncio.fixture
async def fresh_gw(city_template, tmp_path) -> AsyncIterator[StaffGateway]:
    """A gateway of its own, for tests that change accounts or the throttle's state."""
    async with running(city_template, tmp_path) as gateway:
        yield gateway


@pytest_asyncio.fixture(scope="module")
async def clients(gw) -> dict[str, StaffClient]:
    """One signed-in browser per account, by username."""
    return {username: await gw.signed_in(username) for username in ACCOUNTS}


@pytest_asyncio.fixture
async def anonymous(gw) -> StaffClient:
    return gw.client()
