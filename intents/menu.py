"""The menu: what the assistant can do (families, then their services), keyword search, and where
a stray answer could lead."""

from __future__ import annotations

from intents.runtime import Answer, button
from intents.services import Service, catalogue

SORRY = "抱歉，这个我暂时帮不上忙。"
MAX_BUTTONS = 10
# "Did you mean": services the classifier ranked at least this likely are offered when it is unsure.
# Chosen on a split of the training data, never on the held-out sets (README "Did you mean").
DID_YOU_MEAN_FLOOR = 0.1
DID_YOU_MEAN_MAX = 3
SAID = "said"  # the entity a did-you-mean button carries: the citizen's own words, said again
# A turn the assistant could not serve is reported to whoever runs the bot (the gateway keeps these
# questions for staff to review) in a custom message {"custom": {OUTCOME_KEY: outcome}}.
OUTCOME_KEY = "turn_outcome"
DECLINED = "declined"  # out of scope: the polite no and the menu
NOT_UNDERSTOOD = "not_understood"  # the classifier was unsure and no service was plausible
SUGGESTED = "suggested"  # unsure: "did you mean" buttons, or services a keyword matched
OUTCOMES = (DECLINED, NOT_UNDERSTOOD, SUGGESTED)


def _service_buttons(services: list[Service]) -> list[dict[str, str]]:
    return [button(s.name, s.intent) for s in services[:MAX_BUTTONS]]


def family_menu() -> Answer:
    # The buttons are the list (numbered lines on SMS and WeChat): listing the families in the text too
    # doubled the menu and pushed an SMS past its segment budget, cutting the menu off.
    cat = catalogue()
    text = f"我可以为您办理{len(cat.services)}项城市服务。请选一类，或直接说您要办的事（如“12路到哪了”“查公积金”）："
    return Answer(text, [button(f.name, "help", family=f.name) for f in cat.families])


def family_services(family_name: str) -> Answer | None:
    family = next((f for f in catalogue().families if f.name == family_name or f.id == family_name), None)
    if family is None:
        return None
    # The buttons are the list (numbered lines on SMS and WeChat): descriptions would push them past
    # what one message carries once a family has more than a dozen services.
    text = f"{family.name}（{len(family.services)}项服务），请选择，或直接说出您的需要："
    return Answer(text, [button(s.name, s.intent) for s in family.services])


def search(text: str) -> Answer | None:
    """Services whose name or keywords occur in the text ("公积金" → the housing-fund services)."""
    hits = catalogue().search(text.strip())
    if not hits:
        return None
    names = "\n".join(f"· {s.name}：{s.description}" for s in hits[:MAX_BUTTONS])
    return Answer(f"与“{text.strip()}”相关的服务有：\n{names}", _service_buttons(hits))


def help_menu(text: str = "", family: str | None = None) -> Answer:
    if family:
        return family_services(family) or family_menu()
    return family_menu()


def out_of_scope(text: str = "") -> Answer:
    found = search(text) if 0 < len(text.strip()) <= 12 else None
    if found is not None:
        return found
    return Answer(f"{SORRY}我可以帮您办理公交、医疗、缴费、社保、政务等城市服务，请选择：", family_menu().buttons)


def did_you_mean(text: str, ranking: list[dict], entities: dict[str, str]) -> Answer | None:
    """When the classifier is unsure, the few services it found plausible, as buttons that restate the
    citizen's words under the chosen service (two-stage fallback); None when none is plausible."""
    services = {s.intent: s for s in catalogue().services}
    picks = [
        services[r["name"]]
        for r in ranking
        if r.get("name") in services and r.get("confidence", 0) >= DID_YOU_MEAN_FLOOR
    ]
    if not picks:
        return None
    picks = picks[:DID_YOU_MEAN_MAX]
    buttons = []
    for service in picks:
        given = {k: v for k, v in entities.items() if k in service.slots}
        buttons.append(button(service.name, service.intent, **given, **{SAID: text}))
    buttons.append(button("都不是", "out_of_scope"))
    if len(picks) == 1:  # one guess is a yes/no question: "对" takes it
        return Answer(f"没太明白您的意思，您是想办理“{picks[0].name}”吗？", buttons, offer=True)
    return Answer("没太明白您的意思，您是想办理：", buttons)


def services_for_entities(entities: dict[str, str]) -> Answer:
    options = []
    for service in catalogue().services:
        given = {k: v for k, v in entities.items() if k in service.slots}
        if given:
            options.append(button(service.name, service.intent, **given))
    if not options:
        return out_of_scope()
    return Answer("请问您想办理哪一项？", options[:MAX_BUTTONS])
