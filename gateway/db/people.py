"""The demo population: residents spread over the city pack's communities, with their SMS and WeChat
identities and alert subscriptions, and six primary schools whose students' guardians are residents.

Everything is generated from one seed, so two databases seeded alike hold the same people; resident i
is the same whatever N is (one random stream, read in order), so `--residents 250000` after the demo
default only adds residents 2,000 onwards. Rows go in with SQLAlchemy Core in chunks of 5,000 (an
executemany on SQLite, one INSERT … SELECT unnest(arrays) per chunk on PostgreSQL), never one ORM
object per row, and the generator is lazy: memory stays flat and 250,000 residents (with ~340,000
identities and ~70,000 subscriptions) take well under a minute on either backend.

Re-seeding is idempotent: residents are keyed by phone, identities by (channel, address),
subscriptions by (citizen, topic), and schools are written once, all or nothing."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Table, any_, bindparam, func, insert, literal_column, select
from sqlalchemy.dialects import postgresql

from channels.sms.wire import CHANNEL as SMS
from channels.wechat.wire import CHANNEL as WECHAT
from gateway.db.engine import sync_engine, table_of
from gateway.db.models import (
    ChannelIdentity,
    Citizen,
    Guardian,
    School,
    SchoolClass,
    Student,
    Subscription,
)

DEMO_RESIDENTS = 2_000
DEFAULT_SEED = 2026
CHUNK = 5_000  # residents generated, looked up and written at a time
WECHAT_SHARE = 0.35
OPTED_OUT_SHARE = 0.05
SUBSCRIBER_SHARE = 0.20
PHONE_PREFIX = "+86139"
# phone(i) = PHONE_PREFIX + (A·i + B) mod 10⁸: a bijection (A is prime to 10⁸), so phones are unique
# without a lookup and still look random.
_PHONE_A, _PHONE_B, _PHONE_SPACE = 54_435_761, 13_572_468, 10**8

# Guardians are drawn from the first GUARDIAN_POOL residents, so the schools are the same whatever
# N is (seeding more residents later never re-parents a student). Couples: pool[2j] and pool[2j+1].
GUARDIAN_POOL = 2_000
SCHOOL_YEAR = 2026  # the school year 2026/27: grade g entered in SCHOOL_YEAR - g + 1
TWO_GUARDIANS_SHARE = 0.6
# (id, name, district, number in the 学号). Three in the big 克拉玛依区, one in each other district.
SCHOOLS = [
    ("ks01", "克拉玛依市第一小学", "karamay", 1),
    ("ks02", "克拉玛依市第二小学", "karamay", 2),
    ("ks03", "克拉玛依市实验小学", "karamay", 3),
    ("ks04", "独山子区第一小学", "dushanzi", 4),
    ("ks05", "白碱滩区第一小学", "baijiantan", 5),
    ("ks06", "乌尔禾区第一小学", "urho", 6),
]
GRADE_NAMES = "一二三四五六"
STAMPED = ("created_at", "last_seen_at")

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔"
    "钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞鑫宇浩然子涵欣怡梓轩一诺雨桐思远佳琪俊熙"
    "文博晨阳可馨若曦天佑嘉懿梦琪志豪晓东建国海燕春梅国庆新疆瑞雪家乐安琪"
)


@dataclass(frozen=True, slots=True)
class Resident:
    index: int
    phone: str
    name: str
    community_id: str
    preferred_channel: str  # "wechat" exactly when openid is set
    sms_opted_out: bool
    openid: str | None
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SchoolRows:
    schools: list[dict[str, Any]]
    classes: list[dict[str, Any]]
    students: list[dict[str, Any]]
    guardians: list[tuple[str, int, str]]  # (student id, resident index, relation)


def phone(index: int) -> str:
    """Resident index → a unique +86139… number."""
    return f"{PHONE_PREFIX}{(_PHONE_A * index + _PHONE_B) % _PHONE_SPACE:08d}"


def openid(seed: int, index: int) -> str:
    """A 28-character OpenID-like address, stable per (seed, index); 96 random bits never collide here."""
    return "oKmy" + hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=12).hexdigest()


def subscription_topics() -> list[str]:
    """The topic ids the catalogue's subscription services use: the same ids the assistant writes."""
    from intents.services import catalogue

    return sorted({s.params["topic"] for s in catalogue().services if s.handler == "subscription"})


def _pick(draw: float, options: Sequence[str]) -> str:
    return options[int(draw * len(options))]


def _name(rng: random.Random, surname: str | None = None) -> str:
    draw = rng.random
    given = _pick(draw(), GIVEN) + (_pick(draw(), GIVEN) if draw() < 0.7 else "")
    return (surname or _pick(draw(), SURNAMES)) + given


def residents(communities: Sequence[str], count: int, seed: int = DEFAULT_SEED) -> Iterator[Resident]:
    """The first `count` residents of the population for `seed`, lazily. Plain rng.random() draws
    (not choice/sample): a quarter of a million residents is a few million draws."""
    if not communities:
        raise ValueError("the city pack has no communities")
    draw = random.Random(seed).random
    topics = subscription_topics()
    subsets = 2 ** len(topics) - 1  # a subscriber follows a non-empty subset of the topics
    for i in range(count):
        community = _pick(draw(), communities)
        name = (_pick(draw(), SURNAMES) + _pick(draw(), GIVEN)) + (_pick(draw(), GIVEN) if draw() < 0.7 else "")
        on_wechat = draw() < WECHAT_SHARE
        opted_out = draw() < OPTED_OUT_SHARE
        chosen: tuple[str, ...] = ()
        if subsets and draw() < SUBSCRIBER_SHARE:
            mask = 1 + int(draw() * subsets)
            chosen = tuple(t for bit, t in enumerate(topics) if mask >> bit & 1)
        yield Resident(
            index=i,
            phone=phone(i),
            name=name,
            community_id=community,
            preferred_channel=WECHAT if on_wechat else SMS,
            sms_opted_out=opted_out,
            openid=openid(seed, i) if on_wechat else None,
            topics=chosen,
        )


def schools(pool_size: int, seed: int = DEFAULT_SEED) -> SchoolRows:
    """Six primary schools, grades 1–6, 2–3 classes a grade, ~30 students a class, 1–2 guardians a
    student from the first `pool_size` residents. 学号 = KS + entry year + school + class + seat."""
    if pool_size < 1:
        raise ValueError("schools need at least one resident to be a guardian")
    rng = random.Random(f"{seed}:schools")
    pool = list(range(pool_size))
    rng.shuffle(pool)
    couples = max(1, pool_size // 2)
    surnames: dict[int, str] = {}  # a couple's children carry the father's surname
    rows = SchoolRows([], [], [], [])
    k = 0  # students so far, across schools: student k is a child of couple k mod couples
    for school_id, school_name, district, number in SCHOOLS:
        rows.schools.append({"id": school_id, "name": school_name, "district_id": district})
        for grade in range(1, 7):
            for class_no in range(1, rng.randint(2, 3) + 1):
                class_id = f"{school_id}-{grade}-{class_no}"
                rows.classes.append(
                    {
                        "id": class_id,
                        "school_id": school_id,
                        "grade": grade,
                        "name": f"{GRADE_NAMES[grade - 1]}年级{class_no}班",
                    }
                )
                for seat in range(1, rng.randint(27, 33) + 1):
                    student_id = f"KS{SCHOOL_YEAR - grade + 1}{number:02d}{class_no:02d}{seat:02d}"
                    couple = k % couples
                    # pool[2j] is always a father and pool[2j+1] a mother, whichever child they are named for.
                    parents = [(pool[2 * couple], "父亲")]
                    if 2 * couple + 1 < pool_size:
                        parents.append((pool[2 * couple + 1], "母亲"))
                    surname = surnames.setdefault(couple, _pick(rng.random(), SURNAMES))
                    rows.students.append({"id": student_id, "name": _name(rng, surname), "class_id": class_id})
                    if len(parents) == 1 or rng.random() < TWO_GUARDIANS_SHARE:
                        chosen = parents
                    else:
                        chosen = [parents[rng.random() < 0.5]]
                    rows.guardians.extend((student_id, index, relation) for index, relation in chosen)
                    k += 1
    return rows


# --- writing -------------------------------------------------------------------------------------


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of rows with SQLAlchemy Core, no ORM objects.

    SQLite: one executemany, which sqlite3 runs in C. PostgreSQL: one INSERT … SELECT unnest(…)
    with a typed array per column, because psycopg 3 runs an executemany as one pipelined
    statement per row (~100 µs each: 250,000 residents took over a minute) and SQLAlchemy's
    multi-row VALUES pages were slower still (psycopg re-parses every page's placeholders).
    Timestamp columns are stamped by the database (CURRENT_TIMESTAMP, UTC on both backends):
    binding an aware datetime per row costs more than the rest of the row.
    Rows are filtered against what exists before they get here, so there is no ON CONFLICT."""
    if not rows:
        return
    stamps = [c for c in STAMPED if c in table.c]
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table).values({c: func.current_timestamp() for c in stamps}), rows)
        return
    names = list(rows[0])
    arrays = [
        func.unnest(bindparam(f"v_{n}", [r[n] for r in rows], type_=postgresql.ARRAY(table.c[n].type))) for n in names
    ]
    source = select(*arrays, *(func.current_timestamp() for _ in stamps))
    conn.execute(insert(table).from_select([*names, *stamps], source))


def _existing(conn: Connection, column: Any, values: list[str], *where: Any) -> dict[str, int]:
    """{value: row id} for the values of `column` already in its table. The values travel as one
    parameter (a PostgreSQL array, a JSON array for SQLite's json_each): an IN list of thousands of
    placeholders costs more to render and parse than the query costs to run."""
    table = column.table
    found: dict[str, int] = {}
    for start in range(0, len(values), CHUNK):
        part = values[start : start + CHUNK]
        if conn.dialect.name == "postgresql":
            match = column == any_(bindparam("values", part, type_=postgresql.ARRAY(column.type)))
        else:
            match = column.in_(select(literal_column("value")).select_from(func.json_each(json.dumps(part))))
        found.update((value, row_id) for value, row_id in conn.execute(select(column, table.c.id).where(match, *where)))
    return found


def _write_residents(conn: Connection, chunk: list[Resident]) -> dict[str, int]:
    citizen, identity, subscription = table_of(Citizen), table_of(ChannelIdentity), table_of(Subscription)
    known = _existing(conn, citizen.c.phone, [r.phone for r in chunk])
    new = [r for r in chunk if r.phone not in known]
    _insert(
        conn,
        citizen,
        [
            {
                "phone": r.phone,
                "display_name": r.name,
                "community_id": r.community_id,
                "sms_opted_out": r.sms_opted_out,
                "preferred_channel": r.preferred_channel,
            }
            for r in new
        ],
    )
    ids = _existing(conn, citizen.c.phone, [r.phone for r in new])
    # An address may already be someone's: a phone that texted before it was seeded has an identity.
    addresses = [r.phone for r in new] + [r.openid for r in new if r.openid]
    taken = _existing(conn, identity.c.address, addresses, identity.c.channel.in_((SMS, WECHAT)))
    identities = [{"channel": SMS, "address": r.phone, "citizen_id": ids[r.phone]} for r in new if r.phone not in taken]
    identities += [
        {"channel": WECHAT, "address": r.openid, "citizen_id": ids[r.phone]}
        for r in new
        if r.openid and r.openid not in taken
    ]
    # New citizens have no subscriptions yet, so these cannot clash.
    subscriptions = [{"citizen_id": ids[r.phone], "topic": topic} for r in new for topic in r.topics]
    _insert(conn, identity, identities)
    _insert(conn, subscription, subscriptions)
    return {"residents": len(new), "identities": len(identities), "subscriptions": len(subscriptions)}


def _write_schools(conn: Connection, pool_size: int, seed: int) -> dict[str, int]:
    school = table_of(School)
    if conn.execute(select(func.count()).select_from(school).where(school.c.id.in_([s[0] for s in SCHOOLS]))).scalar():
        return {}  # written once, in one transaction: present means complete
    rows = schools(pool_size, seed)
    citizens = _existing(conn, table_of(Citizen).c.phone, [phone(i) for i in range(pool_size)])
    guardians = [
        {"student_id": s, "citizen_id": citizens[phone(i)], "relation": relation, "verified": True}
        for s, i, relation in rows.guardians
        if phone(i) in citizens
    ]
    _insert(conn, school, rows.schools)
    _insert(conn, table_of(SchoolClass), rows.classes)
    for start in range(0, len(rows.students), CHUNK):
        _insert(conn, table_of(Student), rows.students[start : start + CHUNK])
    for start in range(0, len(guardians), CHUNK):
        _insert(conn, table_of(Guardian), guardians[start : start + CHUNK])
    return {
        "schools": len(rows.schools),
        "classes": len(rows.classes),
        "students": len(rows.students),
        "guardians": len(guardians),
    }


def seed_people(
    url: str,
    communities: Sequence[str],
    count: int = DEMO_RESIDENTS,
    seed: int = DEFAULT_SEED,
    with_schools: bool = True,
) -> dict[str, int]:
    """Insert the first `count` residents (and, with_schools, the schools) that are missing, in one
    transaction. Returns what was added per kind; all zeros when everything was there already."""
    added = dict.fromkeys(
        ("residents", "identities", "subscriptions", "schools", "classes", "students", "guardians"), 0
    )
    engine = sync_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # Random phone numbers land all over the unique indexes: with SQLite's default 2 MB page
                # cache most inserts re-read pages. 256 MB (only what is used) for this connection only.
                conn.exec_driver_sql("PRAGMA cache_size = -262144")
            people = residents(communities, count, seed)
            while chunk := list(islice(people, CHUNK)):
                for kind, n in _write_residents(conn, chunk).items():
                    added[kind] += n
            if with_schools and count > 0:
                added.update(_write_schools(conn, min(count, GUARDIAN_POOL), seed))
        if any(added.values()):
            # fresh statistics for the planner: a broadcast right after a bulk load must not plan its
            # audience query for empty tables (the database would analyse them some minutes later)
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return added
