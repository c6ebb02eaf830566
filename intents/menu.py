"""The menu: what the assistant can do, and where a stray answer could lead."""

from __future__ import annotations

from intents.runtime import Answer, button
from intents.services import catalogue

SORRY = "抱歉，这个我暂时帮不上忙。"


def _service_buttons(limit: int = 10) -> list[dict[str, str]]:
    return [button(s.name, s.intent) for s in catalogue().services[:limit]]


def help_menu() -> Answer:
    lines = ["我可以为您办理这些城市服务："]
    for number, family in enumerate(catalogue().families, start=1):
        names = "、".join(s.name for s in family.services)
        lines.append(f"{number}. {family.name}：{names}")
    lines.append("直接说出您的需要即可，例如“12路公交车到哪了”“明天上午挂人民医院的号”。")
    return Answer("\n".join(lines), _service_buttons())


def out_of_scope() -> Answer:
    return Answer(f"{SORRY}您可以试试这些城市服务，或发送“菜单”查看全部：", _service_buttons())


def services_for_entities(entities: dict[str, str]) -> Answer:
    options = []
    for service in catalogue().services:
        given = {k: v for k, v in entities.items() if k in service.slots}
        if given:
            options.append(button(service.name, service.intent, **given))
    if not options:
        return out_of_scope()
    return Answer("请问您想办理哪一项？", options[:10])
