"""The `live` kind: a value from a city feed, formatted for citizens."""

from __future__ import annotations

from datetime import date

from intents.city.feeds import LiveFeeds, SimulatedFeeds
from intents.lookup import named
from intents.runtime import Answer, Context
from intents.services import Service

DEFAULT_DISTRICT = "克拉玛依区"


def feeds() -> LiveFeeds:
    """The city's live feeds. A city with real APIs returns its adapter here."""
    return SimulatedFeeds()


def _day_name(day: date, ctx: Context) -> str:
    return {0: "今天", 1: "明天", 2: "后天"}.get((day - ctx.today).days, f"{day.month}月{day.day}日")


def _number(value: object) -> int:
    return int("".join(ch for ch in str(value) if ch.isdigit()) or 0)


def _weather_line(feed: LiveFeeds, district: str, day: date) -> str:
    w = feed.weather(district, day)
    return f"{w.sky}，{w.low}~{w.high}℃，{w.wind}"


def _another_city(ctx: Context) -> str | None:
    """Another city the citizen asks about ("石河子冷不冷"); the city itself and its districts are not."""
    city = ctx.slot("city")
    home = ctx.pack.city.name
    if not city or city in home or home.removesuffix("市") in city:
        return None
    return None if any(city in d.name for d in ctx.pack.districts) else city


async def live(service: Service, ctx: Context) -> Answer:
    feed, source = feeds(), service.params["feed"]
    district = ctx.slot("district") or DEFAULT_DISTRICT
    if source == "weather":
        elsewhere = _another_city(ctx)
        if elsewhere:
            return Answer(
                f"我只能查询克拉玛依市各区的天气，{elsewhere}的天气请查看中国天气网或拨打12121。\n"
                f"克拉玛依区今天：{_weather_line(feed, DEFAULT_DISTRICT, ctx.today)}",
            )
        day = ctx.day
        return Answer(f"{district}{_day_name(day, ctx)}：{_weather_line(feed, district, day)}")
    if source == "air_quality":
        a = feed.air_quality(district, ctx.now)
        return Answer(f"{district}空气质量指数{a.aqi}，{a.level}，首要污染物{a.pollutant}（{ctx.now:%H}时发布）")
    if source == "weather_warning":
        warning = feed.warning(district, ctx.today)
        return Answer(
            f"当前{district}发布了{warning}，请注意防范。" if warning else f"当前{district}没有生效的气象预警。"
        )
    if source == "outage_notice":
        notice = feed.outage(district, ctx.today)
        return Answer(f"{district}近期计划停水停电：{notice}" if notice else f"{district}暂无计划停水停电。")
    if source == "bank_queue_status":
        branch = named(ctx.pack, "bank_branch", ctx.slot("bank_branch"))
        waiting = feed.queue(branch.id, branch.counters, ctx.now)
        minutes = waiting * ctx.pack.minutes_per_customer // max(1, branch.counters)
        return Answer(f"{branch.name}：当前排队{waiting}人，预计等待{minutes}分钟。营业时间{branch.hours}。")
    record = next((r for r in ctx.table.records if ctx.slot("item") in r.names), None) if ctx.slot("item") else None
    if record is None:  # list every place with its live value
        records = ctx.table.records
    else:
        records = [record]
    lines = []
    for r in records[:8]:
        if source == "road_conditions":
            lines.append(f"{r.name}：{feed.road(r.id, ctx.now)}")
        elif source == "parking":
            total = _number(r.fields.get("总车位", 100))
            lines.append(f"{r.name}：剩余车位{feed.free_spaces(r.id, total, ctx.now)}个，共{total}个")
        elif source == "exchange_rate":
            rate = feed.exchange_rate(r.id, float(str(r.fields.get("参考汇率", 1)).split()[0]), ctx.today)
            lines.append(f"{r.name}：现汇买入价 {rate}（人民币/单位外币，仅供参考）")
        elif source == "on_duty":
            lines.append(f"{r.name}：{r.fields.get('地址', '')}")
    if source == "on_duty":
        district_id = next((d.id for d in ctx.pack.districts if d.name == district), None)
        local = [r for r in ctx.table.records if r.district in (None, district_id)] or ctx.table.records
        pick = local[ctx.today.toordinal() % len(local)]  # pharmacies take turns, one a day
        fields = "，".join(f"{k}：{v}" for k, v in pick.fields.items())
        return Answer(f"今日{district}值班：{pick.name}，{fields}")
    return Answer("\n".join([f"{service.name}（{ctx.now:%H:%M}）：", *lines, f"信息来源：{ctx.table.source}"]))
