"""What a service handler gets to work with, and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from common.database import async_engine, session_factory
from intents import zh
from intents.city.pack import CityPack, load_pack
from intents.city.tables import Table, load_tables
from intents.services import Service
from intents.settings import get_settings


@dataclass
class Answer:
    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    refused: bool = False  # the request could not be answered as asked (a value that does not check out)
    offer: bool = False  # the one button is an offer: the citizen's "确认" takes it, "不用了" lets it go


@dataclass
class Context:
    slots: dict[str, Any]
    citizen_id: int | None
    conversation_id: str
    text: str
    now: datetime
    pack: CityPack
    sessions: async_sessionmaker[AsyncSession]
    service: Service | None = None
    entities: list[dict[str, Any]] = field(default_factory=list)  # of the latest message, in order
    verified_phone: str | None = None  # the phone the citizen proved they hold (SMS sender, bound WeChat)
    channel: str | None = None

    @property
    def table(self) -> Table:
        """The record table behind the current service (params.table)."""
        if self.service is None or "table" not in self.service.params:
            raise LookupError("this service has no table")
        return tables()[self.service.params["table"]]

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def day(self) -> date:
        """The date slot as a date. A form validates it to ISO, but a slot the form does not ask for
        (the movie form's date) keeps the citizen's words ("明天"): read both; today when unset."""
        value = self.slot("date")
        if not value:
            return self.today
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            return zh.parse_date(str(value), self.today) or self.today

    def slot(self, name: str) -> Any:
        return self.slots.get(name)


def now() -> datetime:
    """Local city time (naive). CITYGW_FIXED_NOW pins it, for reproducible demos and tests."""
    fixed = get_settings().fixed_now
    if fixed:
        return datetime.fromisoformat(fixed)
    return datetime.now(city_tz()).replace(tzinfo=None)


@lru_cache
def pack() -> CityPack:
    return load_pack(get_settings().city_pack)


@lru_cache
def city_tz() -> ZoneInfo:
    """The city's time zone, from its data pack."""
    return ZoneInfo(pack().city.timezone)


@lru_cache
def tables() -> dict[str, Table]:
    return load_tables(get_settings().city_pack)


@lru_cache
def sessions() -> async_sessionmaker[AsyncSession]:
    return session_factory(async_engine(get_settings().database_url))


def cancel_offer(booking: str, ref: str, intent: str, slot: str, ref_name: str = "预约号") -> Answer:
    """The one booking a citizen could mean by "取消那个预约", offered: "确认" cancels it, "不用了" keeps it."""
    return Answer(
        f"{booking}（{ref_name} {ref}）。确认取消请回复“确认”，不取消请回复“不用了”。",
        [button("确认取消", intent, **{slot: ref})],
        offer=True,
    )


def button(title: str, intent: str, **entities: str) -> dict[str, str]:
    """A quick reply that, when pressed, is the same as saying the intent with these entities."""
    import json

    payload = f"/{intent}" + (json.dumps(entities, ensure_ascii=False) if entities else "")
    return {"title": title, "payload": payload}
