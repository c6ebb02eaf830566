"""One action, one form validator per catalogue service and one question per slot, generated."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.context import context_for
from bot.actions.safety import never_silent
from intents import slots as slot_rules
from intents.handlers import run_service, summarise
from intents.runtime import Context
from intents.services import Service, catalogue

CONFIRM_BUTTONS = [{"title": "确认", "payload": "/affirm"}, {"title": "取消", "payload": "/cancel"}]
DECLINED = "好的，已取消，没有为您办理任何业务。"
FREE_TEXT_INTENTS = {"inform", "nlu_fallback", "out_of_scope"}
MAX_FREE_TEXT = 30


def reset_events(service: Service) -> list[EventType]:
    return [SlotSet(name, None) for name in [*service.slots, "confirmed", "requested_slot", "request_text"]]


@never_silent
class ServiceAction(Action, ABC):
    """Answers a service once its form (if any) is complete."""

    @property
    @abstractmethod
    def service(self) -> Service: ...

    def name(self) -> str:
        return f"action_svc_{self.service.id}"

    def failure_events(self, tracker: Tracker) -> list[EventType]:
        return reset_events(self.service)

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if self.service.confirm and tracker.get_slot("confirmed") is False:
            dispatcher.utter_message(text=DECLINED)
            return reset_events(self.service)
        context = await context_for(tracker, self.service)
        if not self.service.form:  # no form validated these slots: do it here
            for name in self.service.slots:
                if context.slots.get(name) is None:
                    continue
                result = await slot_rules.validate(name, context.slots[name], context)
                if result.value is None:
                    dispatcher.utter_message(text=result.message, buttons=result.buttons)
                    return reset_events(self.service)
                context.slots[name] = result.value
        answer = await run_service(self.service, context)
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        return [*reset_events(self.service), *remember(self.service, context)]


def remember(service: Service, context: Context) -> list[EventType]:
    """Keep a question (never a transaction) so a follow-up like "那明天呢？" can repeat it. A question
    may be a form ("12路到哪了" asks the line when missing); a transaction confirms."""
    if service.confirm:
        return [SlotSet("last_service", None), SlotSet("last_slots", None)]
    values = {name: context.slots.get(name) for name in service.slots if context.slots.get(name) is not None}
    return [SlotSet("last_service", service.id), SlotSet("last_slots", values)]


def carried_over(service: Service, tracker: Tracker) -> dict[str, Any]:
    """Values the citizen gave for the last question that this service asks for too: "末班车几点" after
    "12路到哪了" is about 12路, "那公积金明细呢" after the balance is about the same ID number."""
    last = tracker.get_slot("last_slots") or {}
    return {
        name: last[name]
        for name in service.required
        if name in last and tracker.get_slot(name) is None and name not in ("date", "period")
    }


@never_silent
class ServiceFormValidation(FormValidationAction, ABC):
    """Checks each answer against the city's data, in the order the form asks for them."""

    @property
    @abstractmethod
    def service(self) -> Service: ...

    def name(self) -> str:
        return f"validate_{self.service.form}"

    async def get_validation_events(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        incoming: dict[str, Any] = tracker.slots_to_validate()
        requested = tracker.get_slot("requested_slot")
        if requested is None:  # the form just started: what the last question named carries over
            incoming = {**carried_over(self.service, tracker), **incoming}
        if requested and requested != "confirmed" and requested not in incoming and self._free_text(tracker):
            # "人名医院" is no entity the NLU knows: judge the words themselves, so the citizen hears
            # "您是不是要找…" instead of the same question again.
            incoming[requested] = tracker.latest_message.get("text", "")
        context: Context = await context_for(tracker, self.service)
        checked: dict[str, Any] = {}
        for name in self.service.slots:  # catalogue order: hospital before department
            if name not in incoming or incoming[name] is None:
                continue
            result = await slot_rules.validate(name, incoming[name], context)
            if result.message:
                dispatcher.utter_message(text=result.message, buttons=result.buttons)
            checked[name] = result.value
            context.slots[name] = result.value
            tracker.slots[name] = result.value
        if "confirmed" in incoming:
            checked["confirmed"] = incoming["confirmed"]
        return [SlotSet(name, value) for name, value in checked.items()]

    def _free_text(self, tracker: Tracker) -> bool:
        """An answer that is neither a command (取消, 菜单) nor another service's request."""
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        text = tracker.latest_message.get("text") or ""
        return intent in {*FREE_TEXT_INTENTS, self.service.intent} and 0 < len(text) <= MAX_FREE_TEXT


@never_silent
class AskSlot(Action, ABC):
    """Asks for one slot, offering the data's choices (departments of the chosen hospital…) as buttons."""

    @property
    @abstractmethod
    def slot(self) -> str: ...

    def name(self) -> str:
        return f"action_ask_{self.slot}"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        form = tracker.active_loop.get("name")
        service = _service_of_form(form) if form else None
        context = await context_for(tracker, service)
        question, buttons = await slot_rules.ask(self.slot, context)
        dispatcher.utter_message(text=question, buttons=buttons)
        return []


@never_silent
class AskConfirmation(Action):
    def name(self) -> str:
        return "action_ask_confirmed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        service = _service_of_form(tracker.active_loop.get("name"))
        summary = await summarise(service, await context_for(tracker, service))
        dispatcher.utter_message(text=f"{summary}\n确认办理请回复“确认”，放弃请回复“取消”。", buttons=CONFIRM_BUTTONS)
        return []


@never_silent
class CancelService(Action):
    def name(self) -> str:
        return "action_cancel"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        form = tracker.active_loop.get("name")
        if not form:
            dispatcher.utter_message(text="好的。当前没有正在办理的业务，还有什么可以帮您？")
            return []
        service = _service_of_form(form)
        dispatcher.utter_message(text=f"好的，已退出“{service.name}”，没有为您办理任何业务。")
        return [ActiveLoop(None), *reset_events(service)]


def _service_of_form(form: str | None) -> Service:
    return next(s for s in catalogue().services if s.form == form)


def _generate() -> dict[str, type[Action]]:
    """Concrete classes per service and slot; rasa-sdk registers every concrete (non-abstract) Action.
    They live in this module's namespace under their own names, so Sanic's worker processes can
    unpickle them."""
    specs: list[tuple[str, type, dict[str, Any]]] = []
    for service in catalogue().services:
        specs.append((f"Svc_{service.id}", ServiceAction, {"service": service}))
        if service.form:
            specs.append((f"Validate_{service.id}", ServiceFormValidation, {"service": service}))
    specs += [(f"Ask_{slot}", AskSlot, {"slot": slot}) for slot in catalogue().slots]
    return {
        name: type(name, (base,), {**attrs, "__module__": __name__, "__qualname__": name})
        for name, base, attrs in specs
    }


globals().update(_generate())
