"""Where is a place, and how to get from one place to another in the city by bus or on foot.

A place is a bus stop (most landmarks, roads and neighbourhoods have one named after them) or a record
of the places table (offices, markets…) that names its nearest stop; routes are planned between stops."""

from __future__ import annotations

from intents import lookup, zh
from intents.city.pack import BusStop, CityPack
from intents.city.tables import Record
from intents.handlers.transport import route_plans
from intents.runtime import Answer, Context, button
from intents.services import Service

NEAR_STOP = "附近公交站"


class Place:
    def __init__(self, name: str, stop: BusStop, record: Record | None = None) -> None:
        self.name, self.stop, self.record = name, stop, record


def _candidates(ctx: Context) -> dict[str, Place]:
    pack: CityPack = ctx.pack
    words: dict[str, Place] = {}
    for stop in pack.bus_stops:
        for word in [stop.name, *stop.aliases]:
            words[word] = Place(stop.name, stop)
    for record in ctx.table.records:
        stop = lookup.named(pack, "bus_stop", record.fields[NEAR_STOP])
        for word in record.names:
            words[word] = Place(record.name, stop, record)
    return words


def places_in(text: str, ctx: Context) -> list[Place]:
    """Places named in the text in the order said; the longest name wins where names overlap."""
    words = _candidates(ctx)
    ordered = [words[w] for w in zh.words_in(text, words)]
    return [p for i, p in enumerate(ordered) if p.name not in {q.name for q in ordered[:i]}]


def _where(ctx: Context, place: Place) -> Answer:
    lines = [f"【{place.name}】"]
    if place.record is not None:
        lines += [f"{label}：{value}" for label, value in place.record.fields.items()]
    district = next((d.name for d in ctx.pack.districts if d.id == place.stop.district), "")
    passing = [line.name for line in ctx.pack.lines_at(place.stop.id)]
    if place.record is None:
        lines.append(f"位于{district}，公交站：{place.stop.name}")
    if passing:
        lines.append(f"经过{place.stop.name}站的公交：{'、'.join(passing)}")
    lines.append("告诉我您从哪里出发，例如“从世纪公园到" + place.name + "怎么走”。")
    return Answer("\n".join(lines), [button(f"{line}现在到哪了", "bus_arrival", bus_line=line) for line in passing[:3]])


async def place_directions(service: Service, ctx: Context) -> Answer:
    found = places_in(zh.normalize_text(ctx.text), ctx)
    if not found:
        return Answer("请告诉我地点的名称，例如“税务局在哪”或“从世纪公园到火车站怎么走”。")
    if len(found) == 1:
        return _where(ctx, found[0])
    origin, destination = found[0], found[1]
    if origin.stop.id == destination.stop.id:
        return Answer(f"{origin.name}和{destination.name}离得很近（都在{origin.stop.name}站附近），步行即可。")
    plans = route_plans(ctx.pack, origin.stop, destination.stop)
    head = f"从{origin.name}到{destination.name}"
    via = [f"（上车：{origin.stop.name}站，下车：{destination.stop.name}站）"]
    if not plans:
        return Answer(f"{head}没有一次换乘以内的公交方案，建议乘坐出租车（电召请说“叫出租车”）。")
    return Answer("\n".join([f"{head}：", *(f"{n}. {p}" for n, p in enumerate(plans, 1)), *via]))
