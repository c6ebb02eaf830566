"""Each slot's rules: what a citizen's words mean (validate) and how to ask for it (ask).

Values are stored canonically: names as the city data spells them, dates as ISO strings,
periods as am/pm, clock times as HH:MM, counts as digit strings."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from intents import availability, lookup, zh
from intents.city import china
from intents.city.pack import Kind
from intents.city.tables import resolve_record
from intents.limits import TICKETS_PER_ORDER
from intents.runtime import Context, button
from intents.services import Service, catalogue

MAX_AMOUNT = 500
MAX_PLACE_CHARS = 30
HAN = re.compile(r"[\u4e00-\u9fff]")
WEEKDAYS = "一二三四五六日"


@dataclass
class Check:
    value: Any | None
    message: str | None = None
    buttons: list[dict[str, str]] = field(default_factory=list)


def _choices(slot: str, names: list[str], limit: int | None = None) -> list[dict[str, str]]:
    """Every choice by default: a question offers all of them, and each channel shows a long list its own
    way (numbered lines continued by "更多", a few buttons at a time in elder mode)."""
    return [button(name, "inform", **{slot: name}) for name in names[:limit]]


def _by_name(kind: Kind, slot: str, label: str) -> Callable[[Any, Context], Awaitable[Check]]:
    """A slot whose value is one of the city's named things (hospital, cinema, branch…)."""

    async def validate(value: Any, ctx: Context) -> Check:
        text = zh.normalize_text(str(value))
        found = lookup.resolve(ctx.pack, kind, text)
        if found.match is not None:
            return Check(found.match)
        if found.suggestions:
            names = "、".join(found.suggestions[:3])
            return Check(
                None, f"没有找到{label}“{text}”，您是不是要找：{names}？", _choices(slot, found.suggestions[:3])
            )
        return Check(None, f"没有找到{label}“{text}”。")

    return validate


async def _department(value: Any, ctx: Context) -> Check:
    check = await _by_name("department", "department", "科室")(value, ctx)
    hospital = ctx.slot("hospital")
    if check.value is None or not hospital:
        return check
    offered = lookup.departments_of(ctx.pack, hospital)
    if check.value not in offered:
        return Check(None, f"{hospital}暂未开设{check.value}，请从以下科室中选择。")
    return check


async def _cinema(value: Any, ctx: Context) -> Check:
    check = await _by_name("cinema", "cinema", "影院")(value, ctx)
    film = ctx.slot("film")
    if check.value is None or not film:
        return check
    if not lookup.showings(ctx.pack, film, check.value):
        return Check(None, f"{check.value}近期没有排映《{film}》，请换一家影院。")
    return check


async def _place(value: Any, ctx: Context) -> Check:
    """A stop or place; a service that goes anywhere (a taxi, params.any_place) takes the address as the
    citizen wrote it ("石油大学北门"), whether or not the city's list of stops has it."""
    check = await _by_name("bus_stop", "bus_stop", "站点")(value, ctx)
    if ctx.service is None or not ctx.service.params.get("any_place"):
        return check
    text = zh.normalize_text(str(value)).strip()
    if not 2 <= len(text) <= MAX_PLACE_CHARS or not HAN.search(text):  # "13899012345" is no address
        return check if check.value is not None else Check(None, "请说一个具体的地点，例如“友谊馆北门”。")
    return Check(text)


async def _bus_line(value: Any, ctx: Context) -> Check:
    text = zh.normalize_text(str(value))
    number = zh.extract_int(text, "路")
    if number is None:
        found = lookup.resolve(ctx.pack, "bus_line", text)
        return Check(found.match) if found.match else Check(None, f"没有听懂线路“{text}”，请说“12路”这样的线路号。")
    try:
        return Check(ctx.pack.line(str(number)).name)
    except KeyError:
        return Check(None, f"本市没有{number}路公交车，请核对线路号。")


async def _date(value: Any, ctx: Context) -> Check:
    day = zh.parse_date(str(value), ctx.today)
    if day is None:
        try:
            day = date.fromisoformat(str(value))
        except ValueError:
            return Check(None, f"没有听懂日期“{value}”，请说“明天”“下周三”或“11月28日”。")
    horizon = ctx.pack.appointment.days_ahead
    if day < ctx.today:
        return Check(None, f"{_day_label(day, ctx.today)}已经过去了，请选择今天或以后的日期。")
    if day > ctx.today + timedelta(days=horizon):
        return Check(None, f"只能预约{horizon}天内的日期，请重新选择。")
    return Check(day.isoformat())


async def _period(value: Any, ctx: Context) -> Check:
    period = zh.parse_period(str(value)) or (str(value) if value in ("am", "pm") else None)
    if period is None:
        return Check(None, "请选择上午或下午。")
    if ctx.slot("hospital") and ctx.slot("department") and ctx.slot("date"):
        problem = await availability.appointment_problem(ctx, ctx.slot("date"), period)
        if problem:
            return Check(None, problem.text, problem.buttons)
    return Check(period)


async def _show_time(value: Any, ctx: Context) -> Check:
    clock = zh.parse_clock(str(value)) or (str(value) if len(str(value)) == 5 else None)
    film, cinema = ctx.slot("film"), ctx.slot("cinema")
    if clock is None:
        return Check(None, f"没有听懂场次“{value}”，请说具体时间，例如“19:30”。")
    if film and cinema:
        times = lookup.show_times(ctx.pack, film, cinema)
        if clock not in times:
            return Check(None, f"{cinema}没有{clock}的《{film}》，可选场次：{'、'.join(times)}。")
        if ctx.day == ctx.today and clock <= ctx.now.strftime("%H:%M"):
            return Check(None, f"今天{clock}的场次已经开始了，请选择稍晚的场次。")
    return Check(clock)


async def _ticket_count(value: Any, ctx: Context) -> Check:
    text = zh.normalize_text(str(value))
    count = zh.extract_int(text, "张") or zh.parse_int(text)
    if count is None or count < 1:
        return Check(None, "请告诉我要买几张票，例如“两张”。")
    if count > TICKETS_PER_ORDER:
        return Check(None, f"每次最多购买{TICKETS_PER_ORDER}张票，请重新输入张数。")
    return Check(str(count))


async def _utility_kind(value: Any, ctx: Context) -> Check:
    kind = lookup.utility_kind_of(ctx.pack, zh.normalize_text(str(value)))
    if kind is None:
        names = "、".join(k.name for k in ctx.pack.utility_kinds)
        return Check(None, f"目前支持查询和缴纳：{names}。")
    return Check(kind.id)


async def _account_no(value: Any, ctx: Context) -> Check:
    digits = "".join(ch for ch in zh.bot_text(str(value)) if ch.isdigit())
    if len(digits) != 10:
        return Check(None, "户号是10位数字，请核对后重新输入。")
    account = await availability.utility_account(ctx, digits)
    if account is None:
        return Check(None, f"没有查到户号{digits}，请核对账单上的户号后重新输入。")
    kind = ctx.slot("utility_kind")
    if kind and account.kind != kind:
        name = ctx.pack.utility_kind(account.kind).name
        return Check(None, f"户号{digits}是{name}户号，与您要办理的业务不符，请重新输入。")
    return Check(digits)


async def _city(value: Any, ctx: Context) -> Check:
    place = china.find(zh.normalize_text(str(value)))
    if place is None:
        return Check(None, f"没有找到城市“{value}”，请说城市名，例如“乌鲁木齐”。")
    return Check(place.short or place.name)


async def _booking_no(value: Any, ctx: Context) -> Check:
    return Check(zh.normalize_text(str(value)).upper())


async def _item(value: Any, ctx: Context) -> Check:
    text = zh.normalize_text(str(value))
    record, suggestions = resolve_record(ctx.table, text)
    if record is not None:
        return Check(record.name)
    if suggestions:
        names = "、".join(suggestions)
        return Check(None, f"没有找到“{text}”，您是不是要找：{names}？", _choices("item", suggestions))
    return Check(None, f"没有找到“{text}”。")


def _pattern(slot: str, pattern: str, label: str, clean: Callable[[str], str] = str.upper):
    """A slot whose value is an identifier of a fixed shape (ID number, phone, plate…)."""
    compiled = re.compile(pattern)

    async def validate(value: Any, ctx: Context) -> Check:
        text = zh.identifier_digits(zh.normalize_text(str(value))).replace(" ", "")
        match = compiled.search(text)
        if match is None:
            return Check(None, f"{label}格式不正确，请重新输入。")
        return Check(clean(match.group(0)))

    return validate


def _plate(text: str) -> str:
    text = text.upper().replace("・", "·").replace(".", "·")
    return text if "·" in text else f"{text[:2]}·{text[2:]}"


async def _amount(value: Any, ctx: Context) -> Check:
    text = zh.normalize_text(str(value))
    number = re.search(r"[0-9]+(\.[0-9]{1,2})?", text)
    amount = float(number.group(0)) if number else zh.extract_int(text, "元") or zh.extract_int(text, "块")
    if not amount or not 1 <= float(amount) <= MAX_AMOUNT:
        return Check(None, f"充值金额需在1到{MAX_AMOUNT}元之间，请重新输入。")
    return Check(f"{float(amount):g}")


VALIDATORS: dict[str, Callable[[Any, Context], Awaitable[Check]]] = {
    "item": _item,
    "district": _by_name("district", "district", "区"),
    "ref_no": _pattern("ref_no", r"[A-Z]{2}[0-9]{10}", "编号"),
    "id_number": _pattern("id_number", r"[1-9][0-9]{16}[0-9X]", "身份证号码"),
    "phone_number": _pattern("phone_number", r"1[3-9][0-9]{9}", "手机号码"),
    "student_id": _pattern("student_id", r"20[0-9]{10}", "学号"),
    "exam_no": _pattern("exam_no", r"[0-9]{14}", "准考证号"),
    "card_no": _pattern("card_no", r"[0-9]{8}", "卡号"),
    "plate_number": _pattern("plate_number", r"新[A-Z][·.]?[A-Z0-9]{5,6}", "车牌号", _plate),
    "flight_no": _pattern("flight_no", r"[A-Z][A-Z0-9][0-9]{3,4}", "航班号"),
    "train_no": _pattern("train_no", r"[GDCZTKY][0-9]{1,4}", "车次"),
    "amount": _amount,
    "bus_line": _bus_line,
    "bus_stop": _place,
    "hospital": _by_name("hospital", "hospital", "医院"),
    "department": _department,
    "date": _date,
    "period": _period,
    "film": _by_name("film", "film", "影片"),
    "cinema": _cinema,
    "show_time": _show_time,
    "ticket_count": _ticket_count,
    "utility_kind": _utility_kind,
    "account_no": _account_no,
    "bank_branch": _by_name("bank_branch", "bank_branch", "网点"),
    "business_type": _by_name("business_type", "business_type", "业务类型"),
    "booking_no": _booking_no,
    "city": _city,
}


async def validate(slot: str, value: Any, ctx: Context) -> Check:
    validator = VALIDATORS.get(slot)
    return await validator(value, ctx) if validator else Check(value)


def _day_label(day: date, today: date) -> str:
    names = {0: "今天", 1: "明天", 2: "后天"}
    offset = (day - today).days
    label = f"{day.month}月{day.day}日（周{WEEKDAYS[day.weekday()]}）"  # every button reads the same way
    return f"{names[offset]} {label}" if offset in names else label


def question_for(slot: str, service: Service | None) -> str:
    """The slot's question as a form asks it: which service it is for, and why that service needs it
    ("社保卡申领：请输入18位身份证号码（用于核对您本人的参保信息）。")."""
    spec = catalogue().slots[slot]
    if service is None:
        return spec.ask
    question = service.ask.get(slot) or spec.ask
    if spec.why and slot not in service.ask:
        stop = "。" if question.endswith("。") else ""
        question = f"{question.removesuffix('。')}（{spec.why}）{stop}"
    return f"{service.name}：{question}"


async def ask(slot: str, ctx: Context) -> tuple[str, list[dict[str, str]]]:
    """The question for a slot and, where the data has them, the choices as buttons."""
    question = question_for(slot, ctx.service)
    pack = ctx.pack
    options: list[str] = []
    if slot == "hospital":
        options = [h.name for h in pack.hospitals]
    elif slot == "department" and ctx.slot("hospital"):
        options = lookup.departments_of(pack, ctx.slot("hospital"))
    elif slot == "film":
        options = [f.title for f in pack.films]
    elif slot == "cinema":
        options = lookup.cinemas_showing(pack, ctx.slot("film")) if ctx.slot("film") else [c.name for c in pack.cinemas]
    elif slot == "show_time" and ctx.slot("film") and ctx.slot("cinema"):
        question = f"{ctx.service.name if ctx.service else '电影购票'}：{ctx.slot('cinema')}《{ctx.slot('film')}》，请问看哪一场？"
        day = ctx.day
        times = lookup.show_times(pack, ctx.slot("film"), ctx.slot("cinema"))
        options = [t for t in times if day > ctx.today or t > ctx.now.strftime("%H:%M")]
        if not options:
            return f"今天{ctx.slot('cinema')}的《{ctx.slot('film')}》已全部开场，明天再来看看吧。", []
    elif slot == "ticket_count":
        return question, [button(f"{n}张", "inform", ticket_count=f"{n}张") for n in (1, 2, 3, 4)]
    elif slot == "utility_kind":
        return question, [button(k.name, "inform", utility_kind=k.name) for k in pack.utility_kinds]
    elif slot == "bank_branch":
        options = [b.name for b in pack.bank_branches]
    elif slot == "business_type":
        options = [t.name for t in pack.bank_business_types]
    elif slot == "date":
        days = [ctx.today + timedelta(days=n) for n in range(0, 4)]
        return question, [button(_day_label(d, ctx.today), "inform", date=d.isoformat()) for d in days]
    elif slot == "period":
        return question, [button("上午", "inform", period="上午"), button("下午", "inform", period="下午")]
    elif slot == "item" and ctx.service is not None and "table" in ctx.service.params:
        options = [r.name for r in ctx.table.records]
    elif slot == "district":
        options = [d.name for d in pack.districts]
    return question, _choices(slot, options)
