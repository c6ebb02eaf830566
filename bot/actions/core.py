"""Conversation-level actions: the menu, leaving the scope, bare answers and follow-ups."""

from __future__ import annotations

import re

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.context import context_for
from bot.actions.safety import never_silent
from bot.actions.services import remember, take_offer
from intents import slots as slot_rules
from intents import zh
from intents.city.tables import resolve_record
from intents.handlers import run_service
from intents.menu import (
    DECLINED,
    NOT_UNDERSTOOD,
    OUTCOME_KEY,
    SORRY,
    SUGGESTED,
    did_you_mean,
    help_menu,
    out_of_scope,
    search,
    services_for_entities,
)
from intents.runtime import Answer, tables
from intents.services import Service, catalogue

YES = re.compile(r"^(对|对的|是|是的|嗯|恩|好|好的|没错|可以|行)([，,。！!\s]|$)")  # "对，退订"
FOLLOW_UP = re.compile(r"^(那|那么|还有)?(.{2,12}?)(的)?(呢|怎么样|咋样|如何)?[?？。！!]*$")
# "不对，打错了，是光明社区" / "不是这个，我说的是友谊新村那个": the last question, about something else.
CORRECTION = re.compile(
    r"^(?:不对|不是|错了|打错了|说错了|写错了|搞错了)[^，,。]{0,6}[，,。]?"
    r"(?:(?:打错了|说错了)[，,。]?)?(?:我说的是|我要的是|我问的是|我要查的是|我要看的是|应该是|是|改成|换成)?"
    r"(.{2,12}?)(?:那个|这个|那家|那里)?[?？。！!]*$"
)


def _follow_up_words(text: str) -> str | None:
    """X of a "那X呢"-shaped message or of a correction ("不对，是X"); None for anything else (a longer
    message is a new question)."""
    plain = zh.normalize_text(text).replace(" ", "")
    corrected = CORRECTION.match(plain)
    if corrected:
        return corrected.group(1)
    found = FOLLOW_UP.match(plain)
    return found.group(2) if found and (found.group(1) or found.group(4)) else None


def looks_like_follow_up(text: str) -> bool:
    return _follow_up_words(text) is not None


def named_record(service: Service, text: str) -> str | None:
    """The record of the service's table that a short follow-up names ("那焊接的呢" → 焊工培训班)."""
    words = _follow_up_words(text)
    if words is None:
        return None
    record, _suggestions = resolve_record(tables()[service.params["table"]], words)
    return record.name if record else None


def _entities(tracker: Tracker) -> dict[str, str]:
    return {e["entity"]: e["value"] for e in tracker.latest_message.get("entities", [])}


@never_silent
class Help(Action):
    """The family menu; a family button lists its services."""

    def name(self) -> str:
        return "action_help"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        answer = help_menu(tracker.latest_message.get("text") or "", _entities(tracker).get("family"))
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        return []


@never_silent
class OutOfScope(Action):
    """Not understood: the plausible services as buttons ("did you mean"); no city service: a keyword
    search ("公积金"), else a polite no and the menu."""

    def name(self) -> str:
        return "action_out_of_scope"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        message = tracker.latest_message
        text = message.get("text") or ""
        # "那焊接的呢" after a list of courses: not understood alone, understood as a follow-up.
        follow_up = await Inform.follow_up(tracker, _entities(tracker)) if looks_like_follow_up(text) else None
        if follow_up is not None:
            answer, events = follow_up
            dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
            return events
        if tracker.get_slot("offer") and YES.match(zh.normalize_text(text)):  # "对，退订" to "您是想…吗？"
            return await take_offer(dispatcher, tracker)
        unsure = (message.get("intent") or {}).get("name") == "nlu_fallback" and not text.startswith("/")
        guess = did_you_mean(text, message.get("intent_ranking") or [], _entities(tracker)) if unsure else None
        answer = guess or out_of_scope(text)
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        if not text.startswith("/"):  # a button ("都不是") repeats no question of the citizen's
            # The gateway keeps what the assistant could not serve for staff to review (issue 15).
            served_nothing = NOT_UNDERSTOOD if unsure else DECLINED
            dispatcher.utter_message(
                json_message={OUTCOME_KEY: served_nothing if answer.text.startswith(SORRY) else SUGGESTED}
            )
        return [SlotSet("offer", answer.buttons[0]["payload"] if answer.offer else None)]


@never_silent
class Inform(Action):
    """A bare answer with no question pending: a follow-up to the last question ("那明天呢？"),
    or "人民医院" out of the blue, which offers the services that take a hospital."""

    def name(self) -> str:
        return "action_inform"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        entities = _entities(tracker)
        answer, events = await self.follow_up(tracker, entities) or (services_for_entities(entities), [])
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        return events

    @staticmethod
    async def follow_up(tracker: Tracker, entities: dict[str, str]) -> tuple[Answer, list[EventType]] | None:
        """The last question asked again with what this message changes: an entity it reads ("那5路呢"),
        or, for a list of records, a record the words name ("那焊接的呢"). None when it is no follow-up."""
        last = tracker.get_slot("last_service")
        if not last:
            return None
        service = catalogue().service(last)
        entities = {k: v for k, v in entities.items() if k in service.slots}
        if not entities and "item" in service.slots and "table" in service.params:
            item = named_record(service, tracker.latest_message.get("text") or "")
            entities = {"item": item} if item else {}
        if not entities:
            return None
        context = context_for(tracker, service)
        context.slots.update(tracker.get_slot("last_slots") or {})
        for name, value in entities.items():
            if name in service.slots:
                result = await slot_rules.validate(name, value, context)
                if result.value is None:
                    return Answer(result.message or "", result.buttons), []
                context.slots[name] = result.value
        return await run_service(service, context), remember(service, context)


@never_silent
class Search(Action):
    """A bare keyword ("公积金"): the services it matches, to choose from."""

    def name(self) -> str:
        return "action_search"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = tracker.latest_message.get("text") or ""
        answer = search(text) or help_menu(text, text.strip())
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        return []
