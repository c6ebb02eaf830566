"""One action, one form validator per catalogue service and one question per slot, generated."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActiveLoop, EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.context import context_for
from bot.actions.safety import never_silent
from intents import slots as slot_rules
from intents.city.tables import record_in_sentence
from intents.handlers import nothing_to_confirm, run_service, summarise
from intents.menu import SAID
from intents.runtime import Answer, Context, pack, tables
from intents.services import Service, catalogue

CONFIRM_BUTTONS = [{"title": "确认", "payload": "/affirm"}, {"title": "取消", "payload": "/cancel"}]
DECLINED = "好的，已取消，没有为您办理任何业务。"
LET_GO = "好的，没有为您办理。还有什么可以帮您？"
NOTHING_TO_CONFIRM = "好的。还有什么可以帮您？发送“菜单”查看全部服务。"
NOTHING_TO_CANCEL = "好的。当前没有正在办理的业务，还有什么可以帮您？"
GAVE_UP = "抱歉，这一项我还是没能识别，已退出“{service}”，没有为您办理任何业务。核对后可随时重新发起，发送“菜单”查看全部服务。"
LEFT = "好的，已退出“{service}”，没有为您办理任何业务。"
MAX_ASKS = 2  # the same question is never asked a third time in a row
RESUME = "您刚才在办理"
FREE_TEXT_INTENTS = {"inform", "nlu_fallback", "out_of_scope"}
# At a confirmation: words that reopen part of the choice, and the slots they reopen.
CHANGE_WORDS = [
    (
        ("换一家", "换家", "换个地方", "换一个地方", "换个医院", "换个影院", "换个网点"),
        ("item", "hospital", "cinema", "bank_branch"),
    ),
    (("换个时间", "换一天", "换个日子", "换个时候", "改时间", "改天"), ("date", "period", "show_time")),
    (("换个科", "换个科室"), ("department",)),
]
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
        if tracker.get_slot("confirmed") is False:  # declined, left half-way ("不约了"), or given up on
            dispatcher.utter_message(text=_why_not_done(self.service, tracker))
            return reset_events(self.service)
        context = context_for(tracker, self.service)
        answer = await answer_validated(self.service, context) if not self.service.form else None
        answer = answer or await run_service(self.service, context)
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        offered = [SlotSet("offer", answer.buttons[0]["payload"] if answer.offer and answer.buttons else None)]
        if answer.refused:
            return [*reset_events(self.service), *offered]
        return [*reset_events(self.service), *remember(self.service, context), *offered]


async def answer_validated(service: Service, context: Context) -> Answer:
    """A service without a form: its slots are checked here (the form would have), then it answers;
    a value that does not check out is the answer instead (marked refused)."""
    for name in service.slots:
        if context.slots.get(name) is None:
            continue
        result = await slot_rules.validate(name, context.slots[name], context)
        if result.value is None:
            return Answer(result.message or "", result.buttons, refused=True)
        context.slots[name] = result.value
    return await run_service(service, context)


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
        context: Context = context_for(tracker, self.service)
        if requested is None and self.service.personal:
            if not context.verified_phone:  # never ask an ID number of someone who cannot see the record
                return [SlotSet("requested_slot", None)]  # ends the form: the service says how to verify
        if requested is None:  # the form just started: what the last question named carries over
            incoming = {**carried_over(self.service, tracker), **incoming}
            named = self._record_named(tracker)
            if named and "item" in self.service.required and not incoming.get("item"):
                incoming["item"] = named
        elif requested == "confirmed":
            changed = await self._change_of_mind(tracker, incoming, context)
            if changed is not None:
                return changed
        elif _intent(tracker) == "deny" and not self._mine(incoming):  # "不约了" half-way: leave the form
            return [SlotSet("confirmed", False), SlotSet("requested_slot", None)]
        elif (requested not in incoming and not await self._answers(requested, tracker, context)) or (
            requested in incoming and _asks_more_than_the_answer(tracker)
        ):
            aside = await self._aside(dispatcher, tracker)
            if aside is not None:
                return aside
        text = tracker.latest_message.get("text", "")
        if requested not in (None, "confirmed") and _was_asked(tracker, requested):
            # "人名医院" is no entity the NLU knows: judge the words themselves, so the citizen hears
            # "您是不是要找…" instead of the same question again; words that answer another question of
            # this form instead ("那充30" when asked the number) go there. An address for a service that
            # goes anywhere is all the words ("石油大学北门", not just the stop it names).
            if not self._mine(incoming) and self._free_text(tracker):
                incoming[await self._slot_answered(requested, text, context)] = text
            elif self.service.params.get("any_place") and requested in incoming and len(text) <= MAX_FREE_TEXT:
                incoming[requested] = text
        giving_up = requested not in (None, "confirmed") and _times_asked(tracker, requested) >= MAX_ASKS
        checked: dict[str, Any] = {}
        for name in self.service.slots:  # catalogue order: hospital before department
            if name not in incoming or incoming[name] is None:
                continue
            result = await slot_rules.validate(name, incoming[name], context)
            if result.message:
                text = result.message
                if name == requested and result.value is None and not giving_up:  # always a way out
                    text += f"\n如不再办理“{self.service.name}”，请回复“取消”。"
                dispatcher.utter_message(text=text, buttons=[] if giving_up else result.buttons)
            checked[name] = result.value
            context.slots[name] = result.value
            tracker.slots[name] = result.value
        if "confirmed" in incoming:
            checked["confirmed"] = incoming["confirmed"]
        events: list[EventType] = [SlotSet(name, value) for name, value in checked.items()]
        if giving_up and checked.get(requested) is None:  # asked twice: no third time, the service says so
            return [*events, SlotSet("confirmed", False), SlotSet("requested_slot", None)]
        if await self._nothing_to_confirm(context):
            return [*events, SlotSet("requested_slot", None)]  # ends the form: the service says why
        return events

    def _mine(self, incoming: dict[str, Any]) -> bool:
        """Whether the message gave a value for one of this service's slots."""
        return any(name in self.service.slots and value is not None for name, value in incoming.items())

    async def _slot_answered(self, requested: str, text: str, context: Context) -> str:
        """The slot free words answer: the one asked, unless they fit none of it and exactly one other
        empty slot of this service (a phone number given when asked where to be picked up)."""
        if (await slot_rules.validate(requested, text, context)).value is not None:
            return requested
        others = [
            name
            for name in self.service.slots
            if name != requested
            and context.slots.get(name) is None
            and (await slot_rules.validate(name, text, context)).value is not None
        ]
        return others[0] if len(others) == 1 else requested

    async def _nothing_to_confirm(self, context: Context) -> bool:
        """Every slot is known, the confirmation not yet asked or answered, and there is nothing to do."""
        service = self.service
        if not service.confirm or context.slots.get("confirmed") is not None:
            return False
        if any(context.slots.get(name) is None for name in service.required):
            return False
        return await nothing_to_confirm(service, context)

    def _record_named(self, tracker: Tracker) -> str | None:
        """The place or item a whole sentence names in passing ("约羽毛球 全民健身中心 明天上午")."""
        if "table" not in self.service.params:
            return None
        record = record_in_sentence(
            tables()[self.service.params["table"]], tracker.latest_message.get("text") or "", pack().city.name
        )
        return record.name if record else None

    async def _answers(self, requested: str, tracker: Tracker, context: Context) -> bool:
        """Whether the message's words are a valid value for the slot being asked ("康乐社区")."""
        text = tracker.latest_message.get("text") or ""
        if not 0 < len(text) <= MAX_FREE_TEXT:
            return False
        return (await slot_rules.validate(requested, text, context)).value is not None

    async def _change_of_mind(
        self, tracker: Tracker, incoming: dict[str, Any], context: Context
    ) -> list[EventType] | None:
        """At the confirmation, "换个时间" / "换一家" / "不是这个，要银河路派出所" change the choice instead
        of cancelling everything: the named slots are emptied (asked again) or replaced, then confirmed anew."""
        text = tracker.latest_message.get("text") or ""
        given = {k: v for k, v in incoming.items() if k in self.service.slots and v}
        named = self._record_named(tracker)
        if named and named != tracker.get_slot("item") and "item" in self.service.slots:
            given["item"] = named
        # "换个时间" alone reopens the time; "换个时间 下午" changes just the afternoon.
        reopened = [
            name
            for words, names in CHANGE_WORDS
            if any(w in text for w in words) and not set(names) & set(given)
            for name in names
            if name in self.service.required
        ]
        if not given and not reopened:
            return None
        events: list[EventType] = [SlotSet(name, None) for name in reopened]
        for name in self.service.slots:  # catalogue order, as the form checks them
            if name in given:
                result = await slot_rules.validate(name, given[name], context)
                context.slots[name] = result.value if result.value is not None else context.slots.get(name)
                events.append(SlotSet(name, context.slots[name]))
        return [*events, SlotSet("confirmed", None)]  # the summary is shown again to confirm

    async def _aside(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType] | None:
        """A question about another service in the middle of this one ("燃气第二档多少钱？" while asked for
        an account number): answered, then this form goes on with a reminder. A transaction cannot be
        started inside another: the citizen is told how to leave this one first."""
        intent = _intent(tracker)
        other = next((s for s in catalogue().services if s.intent == intent and s is not self.service), None)
        if other is None:
            return None
        given = {e["entity"]: e["value"] for e in tracker.latest_message.get("entities") or []}
        if other.confirm or any(name not in given for name in other.required):
            dispatcher.utter_message(
                text=f"您正在办理“{self.service.name}”。如需先办理“{other.name}”，请回复“取消”后再说。"
            )
            return [SlotSet("last_service", tracker.get_slot("last_service"))]
        context = context_for(tracker, other)
        context.slots = {**given}
        answer = await answer_validated(other, context)
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        dispatcher.utter_message(text=f"{RESUME}“{self.service.name}”，请继续：")
        # What the aside named that this form asks too (the phone number whose balance was asked, while
        # topping it up) is kept. Any slot set keeps Rasa from rejecting the form's turn; the form then
        # asks its next question.
        kept = await self._kept_from_aside(given, tracker)
        return [SlotSet("last_service", tracker.get_slot("last_service")), *kept]

    async def _kept_from_aside(self, given: dict[str, Any], tracker: Tracker) -> list[EventType]:
        context = context_for(tracker, self.service)
        kept: list[EventType] = []
        for name in self.service.required:
            if name in given and tracker.get_slot(name) is None:
                result = await slot_rules.validate(name, given[name], context)
                if result.value is not None:
                    kept.append(SlotSet(name, result.value))
        return kept

    def _free_text(self, tracker: Tracker) -> bool:
        """An answer that is neither a command (取消, 菜单) nor another service's request."""
        intent = _intent(tracker)
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
        context = context_for(tracker, service)
        question, buttons = await slot_rules.ask(self.slot, context)
        dispatcher.utter_message(text=question, buttons=buttons)
        return []


@never_silent
class AskConfirmation(Action):
    def name(self) -> str:
        return "action_ask_confirmed"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        service = _service_of_form(tracker.active_loop.get("name"))
        summary = await summarise(service, context_for(tracker, service))
        dispatcher.utter_message(text=f"{summary}\n确认办理请回复“确认”，放弃请回复“取消”。", buttons=CONFIRM_BUTTONS)
        return []


@never_silent
class OfferReply(Action):
    """ "确认", "不用了" or "取消" outside a form: takes or lets go what the last answer offered (the one
    booking to cancel), else there is nothing to confirm or cancel."""

    def name(self) -> str:
        return "action_offer_reply"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        offer = tracker.get_slot("offer")
        intent = _intent(tracker)
        if intent == "affirm" and _offered(offer) is not None:
            return await take_offer(dispatcher, tracker)
        nothing = NOTHING_TO_CANCEL if intent == "cancel" else NOTHING_TO_CONFIRM
        dispatcher.utter_message(text=LET_GO if offer else nothing)
        return [SlotSet("offer", None)]


async def take_offer(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """The citizen said yes to what the last answer offered. An offer to cancel a booking is itself the
    question to confirm: it is done now. A guess at what they meant ("您是想办理“X”吗？") starts that
    service as if its button was pressed: a form asks and confirms as usual."""
    taken = _offered(tracker.get_slot("offer"))
    if taken is None:
        dispatcher.utter_message(text=NOTHING_TO_CONFIRM)
        return [SlotSet("offer", None)]
    service, values, said = taken
    if said is not None and service.form:
        given = [SlotSet(name, value) for name, value in values.items()]
        return [SlotSet("offer", None), *given, SlotSet("request_text", said), FollowupAction(service.form)]
    context = context_for(tracker, service)
    context.slots.update(values)
    context.text = said or context.text
    answer = await answer_validated(service, context)
    dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
    return [SlotSet("offer", None), *remember(service, context)]


def _offered(payload: Any) -> tuple[Service, dict[str, Any], str | None] | None:
    """The service, slot values and restated words (a guess's button) of an offered button's payload
    ("/intent{json}"), or None."""
    if not isinstance(payload, str) or not payload.startswith("/"):
        return None
    intent, _, raw = payload[1:].partition("{")
    service = next((s for s in catalogue().services if s.intent == intent), None)
    try:
        values = json.loads("{" + raw) if raw else {}
    except ValueError:
        return None
    if service is None or not isinstance(values, dict):
        return None
    said = values.get(SAID)
    slots = {k: v for k, v in values.items() if k in service.slots}
    return service, slots, said if isinstance(said, str) else None


@never_silent
class CancelService(Action):
    def name(self) -> str:
        return "action_cancel"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        form = tracker.active_loop.get("name")
        if not form:
            dispatcher.utter_message(text=NOTHING_TO_CANCEL)
            return []
        service = _service_of_form(form)
        dispatcher.utter_message(text=LEFT.format(service=service.name))
        return [ActiveLoop(None), *reset_events(service)]


ASIDE_MIN_CONFIDENCE = 0.6
ASIDE_MIN_WORDS = 4  # characters left once the slot values are taken out: "余额多少" is a question


def _asks_more_than_the_answer(tracker: Tracker) -> bool:
    """A message that gives the value asked for but is a question of its own ("我先问下还剩多少话费
    号码138…" while topping up): the question is answered too, and the value kept."""
    message = tracker.latest_message
    intent = message.get("intent") or {}
    if intent.get("confidence", 0) < ASIDE_MIN_CONFIDENCE:
        return False
    text = message.get("text") or ""
    for entity in sorted(message.get("entities") or [], key=lambda e: e.get("start", 0), reverse=True):
        if "start" in entity and "end" in entity:
            text = text[: entity["start"]] + text[entity["end"] :]
    return len(re.sub(r"[\W_]", "", text)) >= ASIDE_MIN_WORDS


def _intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def _why_not_done(service: Service, tracker: Tracker) -> str:
    """Declined at the confirmation, left half-way, or given up on after a question asked twice."""
    if _intent(tracker) in ("deny", "cancel"):
        all_given = all(tracker.get_slot(name) is not None for name in service.required)
        return DECLINED if all_given and service.confirm else LEFT.format(service=service.name)
    return GAVE_UP.format(service=service.name)


def _before_this_message(tracker: Tracker) -> list[dict[str, Any]]:
    """The events before the message being validated, latest first. Rasa puts the requested slot
    again after that message, so what comes after it says nothing about what was asked."""
    events = list(reversed(tracker.events))
    current = next((i for i, event in enumerate(events) if event.get("event") == "user"), len(events))
    return events[current + 1 :]


def _was_asked(tracker: Tracker, slot: str) -> bool:
    """Whether the message being validated answers the form's question for this slot (and is not the
    request that started the form)."""
    for event in _before_this_message(tracker):
        if event.get("event") in ("user", "active_loop"):
            return False
        if event.get("event") == "slot" and event.get("name") == "requested_slot":
            return bool(event.get("value") == slot)
    return False


def _times_asked(tracker: Tracker, slot: str) -> int:
    """How many times in a row the form has asked for this slot after an answer that did not fill it.
    Rasa sets requested_slot each time it asks; a question asked again after answering an aside
    ("您刚才在办理…") does not count: the citizen asked something, they did not fail to answer."""
    asked, asking, aside = 0, False, False
    for event in _before_this_message(tracker):
        kind = event.get("event")
        if kind in ("user", "active_loop"):
            asked += asking and not aside
            asking, aside = False, False
            if kind == "active_loop":
                break
        elif kind == "slot" and event.get("name") == "requested_slot":
            if event.get("value") != slot:
                break
            asking = True
        elif kind == "bot" and (event.get("text") or "").startswith(RESUME):
            aside = True
    return asked


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
