"""Buses: a line's route and timetable, and where its buses are now (from the live feed)."""

from __future__ import annotations

from intents import lookup
from intents.city.live import BusFeed, SimulatedBusFeed
from intents.city.pack import BusLine
from intents.runtime import Answer, Context, button
from intents.services import Service

PER_DIRECTION = 3


def feed(ctx: Context) -> BusFeed:
    """The live bus feed. A city with a real AVL system plugs its adapter in here."""
    return SimulatedBusFeed(ctx.pack, clock=lambda: ctx.now)


def _line(ctx: Context) -> BusLine:
    return lookup.named(ctx.pack, "bus_line", ctx.slot("bus_line"))


def _ends(ctx: Context, line: BusLine) -> str:
    return f"{ctx.pack.stop(line.stops[0]).name} ⇄ {ctx.pack.stop(line.stops[-1]).name}"


def _stopped(line: BusLine) -> str:
    return f"{line.name}现在已停运。首班{line.first_bus}，末班{line.last_bus}。"


async def bus_arrival(service: Service, ctx: Context) -> Answer:
    line = _line(ctx)
    live = feed(ctx)
    stop_name = ctx.slot("bus_stop")
    if stop_name:
        stop = lookup.named(ctx.pack, "bus_stop", stop_name)
        if stop.id not in line.stops:
            return Answer(
                f"{line.name}不经过{stop.name}站。{line.name}：{_ends(ctx, line)}，发送“{line.name}线路”可查看全部站点。"
            )
        arrivals = await live.arrivals(line.id, stop.id)
        if not arrivals:
            return Answer(_stopped(line))
        lines = [f"{line.name}到{stop.name}站："]
        for a in arrivals:
            when = "已到站" if a.stops_away == 0 else f"约{a.minutes_until}分钟（还有{a.stops_away}站）"
            lines.append(f"开往{a.direction}：{when}")
        return Answer("\n".join(lines))
    vehicles = await live.vehicles(line.id)
    if not vehicles:
        return Answer(_stopped(line))
    lines = [f"{line.name}（{_ends(ctx, line)}）现有{len(vehicles)}辆车在运行："]
    by_direction: dict[str, list] = {}
    for v in vehicles:
        by_direction.setdefault(v.direction, []).append(v)
    for direction, buses in by_direction.items():
        lines.append(f"开往{direction}：")
        for v in buses[:PER_DIRECTION]:
            lines.append(
                f"  {v.vehicle_id} 已过{ctx.pack.stop(v.last_stop_id).name}，"
                f"约{v.minutes_to_next}分钟到{ctx.pack.stop(v.next_stop_id).name}"
            )
    lines.append("告诉我您在哪个站，我帮您算还要等多久。")
    stops = [ctx.pack.stop(s).name for s in line.stops[:: max(1, len(line.stops) // 4)]][:4]
    return Answer(
        "\n".join(lines), [button(f"在{s}等车", service.intent, bus_line=line.name, bus_stop=s) for s in stops]
    )


async def bus_line_info(service: Service, ctx: Context) -> Answer:
    line = _line(ctx)
    stops = [ctx.pack.stop(s).name for s in line.stops]
    return Answer(
        f"{line.name}：{_ends(ctx, line)}\n首班{line.first_bus}，末班{line.last_bus}，约{line.interval_min}分钟一班，"
        f"票价{line.fare_yuan:g}元。\n途经{len(stops)}站：{'—'.join(stops)}",
        [button(f"{line.name}现在到哪了", "bus_arrival", bus_line=line.name)],
    )


def _stops_in_message(ctx: Context) -> list[str]:
    """Stop names in the order the citizen said them ("从A到B")."""
    names = [e["value"] for e in ctx.entities if e.get("entity") == "bus_stop"]
    if ctx.slot("bus_stop") and ctx.slot("bus_stop") not in names:
        names.append(ctx.slot("bus_stop"))
    resolved = []
    for name in names:
        found = lookup.resolve(ctx.pack, "bus_stop", name)
        if found.match and found.match not in resolved:
            resolved.append(found.match)
    return resolved


def route_plans(pack, origin, destination, limit: int = 3) -> list[str]:
    """Up to `limit` bus plans between two stops, fewest stops first: direct lines, else one change."""
    plans = []
    for line in pack.bus_lines:  # direct lines first
        if origin.id in line.stops and destination.id in line.stops:
            hops = abs(line.stops.index(destination.id) - line.stops.index(origin.id))
            plans.append((hops, f"乘坐{line.name}直达，{hops}站"))
    if not plans:  # one change
        for first in pack.lines_at(origin.id):
            for second in pack.lines_at(destination.id):
                if first.id == second.id:
                    continue
                for change in set(first.stops) & set(second.stops):
                    hops = abs(first.stops.index(change) - first.stops.index(origin.id)) + abs(
                        second.stops.index(destination.id) - second.stops.index(change)
                    )
                    name = pack.stop(change).name
                    plans.append((hops, f"乘坐{first.name}到{name}，换乘{second.name}，共{hops}站"))
    return [text for _hops, text in sorted(set(plans))[:limit]]


async def bus_route(service: Service, ctx: Context) -> Answer:
    stops = _stops_in_message(ctx)
    if len(stops) < 2:
        return Answer("请告诉我起点和终点，例如“从世纪公园到火车站怎么坐车”。")
    origin, destination = (lookup.named(ctx.pack, "bus_stop", name) for name in stops[:2])
    plans = route_plans(ctx.pack, origin, destination)
    if not plans:
        return Answer(f"从{origin.name}到{destination.name}没有一次换乘以内的公交方案，建议乘坐出租车。")
    lines = [f"从{origin.name}到{destination.name}：", *(f"{n}. {text}" for n, text in enumerate(plans, 1))]
    return Answer("\n".join(lines))


async def bus_stop_lines(service: Service, ctx: Context) -> Answer:
    stop = lookup.named(ctx.pack, "bus_stop", ctx.slot("bus_stop"))
    lines = ctx.pack.lines_at(stop.id)
    if not lines:
        return Answer(f"目前没有公交线路经过{stop.name}。")
    names = "、".join(line.name for line in lines)
    return Answer(
        f"经过{stop.name}的公交线路有：{names}。",
        [button(f"{line.name}现在到哪了", "bus_arrival", bus_line=line.name, bus_stop=stop.name) for line in lines[:6]],
    )
