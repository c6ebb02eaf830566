"""Conversation-level actions: the menu, leaving the scope, bare answers with no question."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.context import context_for
from bot.actions.services import remember
from intents import slots as slot_rules
from intents.handlers import run_service
from intents.menu import services_for_entities
from intents.runtime import Answer
from intents.services import catalogue


class Help(Action):
    def name(self) -> str:
        return "action_help"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        entities = {e["entity"]: e["value"] for e in tracker.latest_message.get("entities", [])}
        answer, events = await self._follow_up(tracker, entities) or (services_for_entities(entities), [])
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        return events

    async def _follow_up(self, tracker: Tracker, entities: dict[str, str]) -> tuple[Answer, list[EventType]] | None:
        """ "那明天呢？" after a weather answer: the last question again, with the new values."""
        last = tracker.get_slot("last_service")
        if not last or not set(entities) & set(catalogue().service(last).slots):
            return None
        service = catalogue().service(last)
        context = await context_for(tracker, service)
        context.slots.update(tracker.get_slot("last_slots") or {})
        for name, value in entities.items():
            if name in service.slots:
                result = await slot_rules.validate(name, value, context)
                if result.value is None:
                    return Answer(result.message or "", result.buttons), []
                context.slots[name] = result.value
        return await run_service(service, context), remember(service, context)


class RestartService(Action):
    """Declared for rules that restart a service with new slots; kept minimal on purpose."""

    def name(self) -> str:
        return "action_restart_service"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        return []
