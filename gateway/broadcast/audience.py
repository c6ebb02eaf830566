"""Who a broadcast reaches, as SQL: the audience JSON is validated into an Audience, which becomes a
filter on citizens; one CASE expression picks each citizen's channel, and the same expression serves
the preview's counts and the fan-out's INSERT … SELECT, so the two can never disagree.

Channel per citizen, from what each channel's wire says of itself (gateway/wires.py): a channel that
carries notices when they prefer it and have an address there (WeChat: a WeChat identity; web push: a
live subscription from web chat); else SMS to their phone (their own, or the number they texted from),
unless they opted out and this is not an emergency; else the other notice channels in the registry's
order (WeChat, then web push) where they have an address; else nobody ("opted_out" or "none": recorded
as skipped). A web push recipient's address is their newest live subscription's id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import aliased
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Wire
from gateway.broadcast.errors import BroadcastError
from gateway.broadcast.phones import MAX_PHONES, normalize_phone
from gateway.db.engine import dialect_insert, select_rows, table_of
from gateway.db.models import (
    BroadcastRecipient,
    ChannelIdentity,
    Citizen,
    Community,
    District,
    Guardian,
    School,
    SchoolClass,
    Student,
    Subscription,
    WebPushSubscription,
)
from gateway.wires import CHANNELS, PHONE

AREA_TYPES = ("all", "districts", "communities", "topics", "list")
SCHOOL_TYPES = ("school", "grade", "classes")
ACCOUNTS = tuple(w for w in CHANNELS if w.carries_notices and not w.address_is_phone)  # WeChat, web push
REACHABLE = (PHONE.name, *(w.name for w in ACCOUNTS))
SKIP_REASONS = {"opted_out": "已退订短信", "none": "没有手机号或微信"}  # recorded on skipped recipients
# How many ids one audience may name, per type: the one set of limits (the staff API's schema reads them).
MAX_IDS = {"districts": 100, "communities": 500, "topics": 50, "classes": 200}
MAX_GRADES = 12


@dataclass(frozen=True)
class Audience:
    type: str
    ids: tuple[str, ...] = ()
    grades: tuple[int, ...] = ()
    phones: tuple[str, ...] = ()
    school_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """What is stored in Broadcast.audience (normalised: phones in E.164, no repeats)."""
        if self.type in ("districts", "communities", "topics", "classes"):
            return {"type": self.type, "ids": list(self.ids)}
        if self.type == "list":
            return {"type": "list", "phones": list(self.phones)}
        if self.type == "grade":
            return {"type": "grade", "grades": list(self.grades)}
        return {"type": self.type}


@lru_cache
def topics() -> dict[str, str]:
    """Subscription topics citizens can opt into (from the service catalogue): id → Chinese name."""
    from intents.services import catalogue

    return {
        s.params["topic"]: s.params.get("topic_name", s.name)
        for s in catalogue().services
        if s.handler == "subscription" and "topic" in s.params
    }


def _bad(code: str, message: str) -> BroadcastError:
    return BroadcastError(code, message, 400)


def _names(values: Sequence[object], limit: int = 5) -> str:
    shown = "、".join(str(v) for v in list(values)[:limit])
    return shown + (f"等{len(values)}个" if len(values) > limit else "")


def _strings(raw: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    values, most = raw.get(key), MAX_IDS[raw["type"]]
    if not isinstance(values, list) or not values:
        raise _bad("bad_audience", f"请至少选择一个{what}。")
    if len(values) > most:
        raise _bad("bad_audience", f"一次最多选择{most}个{what}。")
    if not all(isinstance(v, str) and v for v in values):
        raise _bad("bad_audience", f"{what}编号格式不对。")
    return tuple(dict.fromkeys(values))  # keep order, drop repeats


async def _missing(db: AsyncSession, column: Any, ids: tuple[str, ...], *where: ColumnElement[bool]) -> list[str]:
    found = set((await select_rows(db, select(column).where(column.in_(ids), *where))).scalars().all())
    return [i for i in ids if i not in found]


async def validate(db: AsyncSession, kind: str, raw: object, school_id: str | None = None) -> Audience:
    """The audience JSON checked against the database; BroadcastError names what is wrong."""
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise _bad("bad_audience", "请选择发送对象。")
    kind_types = SCHOOL_TYPES if kind == "school" else AREA_TYPES
    type_ = raw["type"]
    if type_ not in kind_types:
        raise _bad("bad_audience", f"不支持的发送对象类型：{type_}。")
    if type_ == "all":
        return Audience("all")
    if type_ == "districts":
        ids = _strings(raw, "ids", "区")
        if missing := await _missing(db, col(District.id), ids):
            raise _bad("unknown_district", f"没有这个区：{_names(missing)}。")
        return Audience("districts", ids=ids)
    if type_ == "communities":
        ids = _strings(raw, "ids", "社区")
        if missing := await _missing(db, col(Community.id), ids):
            raise _bad("unknown_community", f"没有这个社区：{_names(missing)}。")
        return Audience("communities", ids=ids)
    if type_ == "topics":
        ids = _strings(raw, "ids", "订阅主题")
        if missing := [t for t in ids if t not in topics()]:
            raise _bad("unknown_topic", f"没有这个订阅主题：{_names(missing)}。")
        return Audience("topics", ids=ids)
    if type_ == "list":
        return Audience("list", phones=_phones(raw.get("phones")))
    return await _school(db, type_, raw, school_id)


def _phones(values: object) -> tuple[str, ...]:
    if not isinstance(values, list) or not values:
        raise _bad("bad_audience", "号码名单是空的，请先上传号码。")
    if len(values) > MAX_PHONES:
        raise _bad("too_many_phones", f"号码名单最多{MAX_PHONES}个号码，这份有{len(values)}个。")
    phones, bad = [], []
    for value in values:
        phone = normalize_phone(value) if isinstance(value, str) else None
        if phone is None:
            bad.append(value)
        else:
            phones.append(phone)
    if bad:
        raise _bad("bad_phone", f"名单里有无效的手机号：{_names(bad)}。")
    return tuple(dict.fromkeys(phones))


async def _school(db: AsyncSession, type_: str, raw: dict[str, Any], school_id: str | None) -> Audience:
    if not school_id or await db.get(School, school_id) is None:
        raise _bad("unknown_school", "没有找到这所学校。")
    if type_ == "school":
        return Audience("school", school_id=school_id)
    if type_ == "classes":
        ids = _strings(raw, "ids", "班级")
        if missing := await _missing(db, col(SchoolClass.id), ids, col(SchoolClass.school_id) == school_id):
            raise _bad("unknown_class", f"本校没有这个班级：{_names(missing)}。")
        return Audience("classes", ids=ids, school_id=school_id)
    grades = raw.get("grades")
    if (
        not isinstance(grades, list)
        or not grades
        or not all(isinstance(g, int) and not isinstance(g, bool) for g in grades)
    ):
        raise _bad("bad_audience", "请至少选择一个年级。")
    have = set(
        (
            await select_rows(
                db, select(col(SchoolClass.grade)).where(col(SchoolClass.school_id) == school_id).distinct()
            )
        )
        .scalars()
        .all()
    )
    if missing := [g for g in dict.fromkeys(grades) if g not in have]:
        raise _bad("unknown_grade", f"本校没有这个年级：{_names([f'{g}年级' for g in missing])}。")
    return Audience("grade", grades=tuple(dict.fromkeys(grades)), school_id=school_id)


def parse(stored: dict[str, Any], school_id: str | None) -> Audience:
    """A stored (already validated) audience back into an Audience."""
    type_ = stored["type"]
    return Audience(
        type_,
        ids=tuple(stored.get("ids", ())),
        grades=tuple(stored.get("grades", ())),
        phones=tuple(stored.get("phones", ())),
        school_id=school_id if type_ in SCHOOL_TYPES else None,
    )


# --- the query ----------------------------------------------------------------------------------


def _school_scope(audience: Audience) -> list[ColumnElement[bool]]:
    scope = [col(SchoolClass.school_id) == audience.school_id]
    if audience.type == "grade":
        scope.append(col(SchoolClass.grade).in_(audience.grades))
    elif audience.type == "classes":
        scope.append(col(SchoolClass.id).in_(audience.ids))
    return scope


def _guardians(audience: Audience) -> Any:
    return (
        select(col(Guardian.citizen_id))
        .join(Student, col(Student.id) == col(Guardian.student_id))
        .join(SchoolClass, col(SchoolClass.id) == col(Student.class_id))
        .where(*_school_scope(audience))
    )


def _filter(audience: Audience) -> ColumnElement[bool]:
    t = audience.type
    if t == "all":
        return true()
    if t == "districts":
        return col(Citizen.community_id).in_(
            select(col(Community.id)).where(col(Community.district_id).in_(audience.ids))
        )
    if t == "communities":
        return col(Citizen.community_id).in_(audience.ids)
    if t == "topics":
        return exists().where(
            col(Subscription.citizen_id) == col(Citizen.id), col(Subscription.topic).in_(audience.ids)
        )
    if t == "list":
        by_identity = select(col(ChannelIdentity.citizen_id)).where(
            col(ChannelIdentity.channel) == PHONE.name, col(ChannelIdentity.address).in_(audience.phones)
        )
        return or_(col(Citizen.phone).in_(audience.phones), col(Citizen.id).in_(by_identity))
    return col(Citizen.id).in_(_guardians(audience))


def _identity(channel: str) -> Any:
    # No min()/ORDER BY: either would tempt the planner to walk the (channel, address) index for every
    # citizen; this way it looks the citizen up by citizen_id. Citizens have one address per channel.
    identity = aliased(ChannelIdentity)
    return (
        select(col(identity.address))
        .where(col(identity.citizen_id) == col(Citizen.id), col(identity.channel) == channel)
        .limit(1)
        .correlate(Citizen)
        .scalar_subquery()
    )


def _push_subscription() -> Any:
    # the newest live subscription: the browser the citizen subscribed from last (one per citizen)
    push = aliased(WebPushSubscription)
    return (
        select(func.max(col(push.id)))
        .where(col(push.citizen_id) == col(Citizen.id), col(push.gone_at).is_(None))
        .correlate(Citizen)
        .scalar_subquery()
    )


def _student(audience: Audience) -> Any:
    if audience.type not in SCHOOL_TYPES:
        return null()
    # a parent of two pupils in scope gets one message, recorded against one of them (no min(): see
    # _identity)
    return (
        select(col(Guardian.student_id))
        .join(Student, col(Student.id) == col(Guardian.student_id))
        .join(SchoolClass, col(SchoolClass.id) == col(Student.class_id))
        .where(col(Guardian.citizen_id) == col(Citizen.id), *_school_scope(audience))
        .limit(1)
        .correlate(Citizen)
        .scalar_subquery()
    )


def _base(audience: Audience, after: int | None = None, limit: int | None = None, upto: int | None = None) -> Any:
    query = select(
        col(Citizen.id).label("citizen_id"),
        func.coalesce(col(Citizen.phone), _identity(PHONE.name)).label("phone"),
        col(Citizen.sms_opted_out).label("opted_out"),
        col(Citizen.preferred_channel).label("preferred"),
        *(_account(wire).label(wire.name) for wire in ACCOUNTS),
        _student(audience).label("student_id"),
    ).where(_filter(audience))
    if upto is not None:
        query = query.where(col(Citizen.id) > (after or 0), col(Citizen.id) <= upto)
    elif after is not None:
        # keyset pagination: each page starts where the last ended, never with OFFSET
        query = query.where(col(Citizen.id) > after).order_by(col(Citizen.id)).limit(limit)
    return query.subquery("audience")


def _account(wire: type[Wire]) -> Any:
    """A citizen's address on a notice channel other than the phone, where that channel keeps it."""
    return _push_subscription() if wire.addressed_by == "push_subscription" else _identity(wire.name)


def _choice(base: Any, emergency: bool) -> tuple[Any, Any]:
    """(channel, address) CASE expressions over _base's columns; see the module docstring."""
    c = base.c
    accounts = [(wire.name, c[wire.name], cast(c[wire.name], String)) for wire in ACCOUNTS]
    sms_ok = c.phone.is_not(None) if emergency else and_(c.phone.is_not(None), not_(c.opted_out))
    preferred = [(and_(c.preferred == name, held.is_not(None)), name, address) for name, held, address in accounts]
    fallback = [(held.is_not(None), name, address) for name, held, address in accounts]
    rules = [*preferred, (sms_ok, PHONE.name, c.phone), *fallback]
    channel = case(
        *((when, literal(name)) for when, name, _ in rules),
        (c.phone.is_not(None), literal("opted_out")),
        else_=literal("none"),
    )
    address = case(*((when, value) for when, _, value in rules), else_=func.coalesce(c.phone, literal("")))
    return channel, address


async def counts(db: AsyncSession, audience: Audience, emergency: bool) -> dict[str, int]:
    """Citizens per outcome: sms, wechat, webpush, opted_out, none. Listed numbers that are nobody's yet
    count as SMS (they become citizens when the broadcast is created)."""
    base = _base(audience)
    channel, _ = _choice(base, emergency)
    rows = (await select_rows(db, select(channel, func.count()).select_from(base).group_by(channel))).all()
    out = {**dict.fromkeys(REACHABLE, 0), "opted_out": 0, "none": 0}
    out.update({name: int(n) for name, n in rows})
    if audience.type == "list":
        out[PHONE.name] += len(audience.phones) - len(await _known_phones(db, audience.phones))
    return out


async def reachable(db: AsyncSession, audience: Audience, emergency: bool) -> bool:
    """Whether anyone at all would get the message (cheaper than counting everyone)."""
    base = _base(audience)
    channel, _ = _choice(base, emergency)
    found = (await select_rows(db, select(base.c.citizen_id).where(channel.in_(REACHABLE)).limit(1))).first()
    return found is not None


async def page(db: AsyncSession, audience: Audience, emergency: bool, after: int, limit: int) -> Sequence[Row[Any]]:
    """The next `limit` citizens with id > after, in id order: (citizen_id, channel, address, student_id)."""
    base = _base(audience, after, limit)
    channel, address = _choice(base, emergency)
    query = select(base.c.citizen_id, channel.label("channel"), address.label("address"), base.c.student_id)
    return (await select_rows(db, query.order_by(base.c.citizen_id))).all()


async def page_end(db: AsyncSession, audience: Audience, after: int, limit: int) -> int | None:
    """The last citizen id of the next page of `limit` (None: nobody left), from the filter alone."""
    ids = (
        select(col(Citizen.id).label("id"))
        .where(_filter(audience), col(Citizen.id) > after)
        .order_by(col(Citizen.id))
        .limit(limit)
        .subquery()
    )
    return (await select_rows(db, select(func.max(ids.c.id)))).scalar()


async def insert_recipients(
    db: AsyncSession, audience: Audience, emergency: bool, broadcast_id: int, after: int, upto: int, now: Any
) -> int:
    """Recipient rows for the audience's citizens with after < id ≤ upto, written by the database
    itself (INSERT … SELECT: the rows never travel through Python); returns how many were new.
    Who cannot be reached is recorded too, as skipped with the reason."""
    base = _base(audience, after, upto=upto)
    channel, address = _choice(base, emergency)
    reachable = channel.in_(REACHABLE)
    rows = select(
        literal(broadcast_id),
        base.c.citizen_id,
        base.c.student_id,
        case((reachable, channel), (channel == "opted_out", literal(PHONE.name)), else_=literal("none")),
        func.coalesce(address, literal("")),
        case((reachable, literal("queued")), else_=literal("skipped")),
        case(
            (reachable, null()),
            (channel == "opted_out", literal(SKIP_REASONS["opted_out"])),
            else_=literal(SKIP_REASONS["none"]),
        ),
        literal(0),
        literal(now, table_of(BroadcastRecipient).c.updated_at.type),
    ).where(base.c.citizen_id > after)  # SQLite needs a WHERE before ON CONFLICT; it changes nothing
    columns = ["broadcast_id", "citizen_id", "student_id", "channel", "address", "status", "error", "attempts"]
    insert = insert_ignoring_conflicts(db, BroadcastRecipient, "broadcast_id", "citizen_id")
    # count what RETURNING gives: the rowcount of INSERT … SELECT came back -1 through psycopg
    written = await db.exec(insert.from_select([*columns, "updated_at"], rows).returning(insert.table.c.id))
    return len(written.all())


async def _owned_phones(db: AsyncSession, phones: Sequence[str]) -> set[str]:
    found = await select_rows(db, select(col(Citizen.phone)).where(col(Citizen.phone).in_(phones)))
    return {phone for phone in found.scalars() if phone is not None}  # the column is nullable; matches are not


async def _texted(db: AsyncSession, phones: Sequence[str]) -> list[tuple[int, str]]:
    """(citizen id, number) of listed numbers that have texted us (an SMS identity)."""
    rows = await select_rows(
        db,
        select(col(ChannelIdentity.citizen_id), col(ChannelIdentity.address)).where(
            col(ChannelIdentity.channel) == PHONE.name, col(ChannelIdentity.address).in_(phones)
        ),
    )
    return [(citizen_id, address) for citizen_id, address in rows.all()]


async def _known_phones(db: AsyncSession, phones: Sequence[str]) -> set[str]:
    if not phones:
        return set()
    return await _owned_phones(db, phones) | {address for _, address in await _texted(db, phones)}


def insert_ignoring_conflicts(db: AsyncSession, model: Any, *conflict: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for the session's database (SQLite or PostgreSQL)."""
    return dialect_insert(db, model).on_conflict_do_nothing(index_elements=list(conflict) or None)


async def ensure_citizens(db: AsyncSession, phones: Sequence[str]) -> None:
    """Every listed number belongs to a citizen afterwards (in the caller's transaction), so that it
    can have a recipient row: a number that texted us before becomes its citizen's phone; an unknown
    one becomes a new citizen."""
    owned = await _owned_phones(db, phones)
    texted = [(citizen_id, phone) for citizen_id, phone in await _texted(db, phones) if phone not in owned]
    for citizen_id, phone in texted:
        await db.exec(
            update(Citizen).where(col(Citizen.id) == citizen_id, col(Citizen.phone).is_(None)).values(phone=phone)
        )
    known = owned | {phone for _, phone in texted}
    if missing := [p for p in phones if p not in known]:
        await db.exec(insert_ignoring_conflicts(db, Citizen, "phone"), params=[{"phone": p} for p in missing])
