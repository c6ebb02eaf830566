"""Travel out of the city by coach, train or plane: "去乌市的班车", "奎屯到北京的火车票", "飞成都多少钱".

The city's tables hold what leaves from (or arrives at) the city, one record per route, named
"克拉玛依—乌鲁木齐动车". The citizen names places of all China (the `city` entity): a route the city
has is answered; a destination it has no direct route to is told plainly, with the way via the hub;
a trip that does not touch the city is told where to look instead of being guessed."""

from __future__ import annotations

from intents.city import china
from intents.city.tables import Record
from intents.handlers import generic
from intents.runtime import Answer, Context, button
from intents.services import Service

HUB = "乌鲁木齐"


def _ends(record: Record) -> tuple[str, str]:
    """("克拉玛依", "乌鲁木齐") of "克拉玛依—乌鲁木齐动车"; ("", "") for a record that is no route."""
    route = record.name.split("（")[-1].rstrip("）") if "（" in record.name else record.name
    if "—" not in route:
        return "", ""
    origin, rest = route.split("—", 1)
    return origin, rest


def _home_names(ctx: Context) -> list[str]:
    city = ctx.pack.city.name
    return [
        city,
        city.removesuffix("市"),
        "克市",
        *(d.name for d in ctx.pack.districts),
        *(d.name.removesuffix("区") for d in ctx.pack.districts),
    ]


def _is_home(name: str, ctx: Context) -> bool:
    return any(name and (name in h or h in name) for h in _home_names(ctx))


def _places(ctx: Context) -> tuple[str | None, str | None]:
    """(origin, destination) named by the citizen; None where they named none (then: the city)."""
    named = [p.short or p.name for p in china.mentioned(ctx.text)]
    if not named and ctx.slot("city"):
        named = [ctx.slot("city")]
    named = [n for n in named if not _is_home(n, ctx)]
    if len(named) >= 2:
        return named[0], named[1]
    if not named:
        return None, None
    # The order said is the direction: "上海飞克拉玛依" arrives, "克拉玛依飞上海" leaves; "从上海来" arrives.
    home_at = [ctx.text.find(h) for h in _home_names(ctx) if h in ctx.text]
    arriving = f"从{named[0]}" in ctx.text or (bool(home_at) and min(home_at) > ctx.text.find(named[0]))
    return (named[0], None) if arriving else (None, named[0])


def _route(ctx: Context, place: str, outbound: bool) -> Record | None:
    for record in ctx.table.records:
        origin, destination = _ends(record)
        if (destination if outbound else origin).startswith(place) and _is_home(
            origin if outbound else destination, ctx
        ):
            return record
    return None


def _answer_route(ctx: Context, record: Record) -> Answer:
    details = [f"{label}：{value}" for label, value in record.fields.items()]
    return Answer("\n".join([f"【{record.name}】", *details, f"信息来源：{ctx.table.source}"]))


async def travel(service: Service, ctx: Context) -> Answer:
    if ctx.slot("item"):  # a button or a route named whole: "克拉玛依到乌鲁木齐动车"
        return await generic.info(service, ctx)
    mode, elsewhere = service.params["mode"], service.params["elsewhere"]
    origin, destination = _places(ctx)
    if origin and destination:
        return Answer(
            f"我只能查询从克拉玛依出发或到达克拉玛依的{mode}。{origin}到{destination}的{mode}请通过{elsewhere}查询。"
        )
    if origin:  # coming to the city
        record = _route(ctx, origin, outbound=False)
        if record:
            return _answer_route(ctx, record)
        back = _route(ctx, origin, outbound=True)
        text = f"暂无{origin}到克拉玛依的{mode}信息，请通过{elsewhere}查询。"
        return Answer(text + (f"克拉玛依发往{origin}的{mode}：\n" + _answer_route(ctx, back).text if back else ""))
    if destination:
        record = _route(ctx, destination, outbound=True)
        if record:
            return _answer_route(ctx, record)
        hub = _route(ctx, HUB, outbound=True)
        text = f"克拉玛依目前没有直达{destination}的{mode}。"
        if hub:
            text += f"可以先到{HUB}再换乘：\n" + _answer_route(ctx, hub).text
        return Answer(text, [button(r.name, service.intent, item=r.name) for r in ctx.table.records[:6]])
    return await generic.info(service, ctx)
