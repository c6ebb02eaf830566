"""Conversation-level actions: the menu, leaving the scope, bare answers with no question."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from intents.menu import help_menu, out_of_scope, services_for_entities


class Help(Action):
    def name(self) -> str:
        return "action_help"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        entities = {e["entity"]: e["value"] for e in tracker.latest_message.get("entities", [])}
        answer = help_menu(tracker.latest_message.get("text") or "", entities.get("family"))
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        return []


class OutOfScope(Action):
    def name(self) -> str:
        return "action_out_of_scope"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        answer = out_of_scope(tracker.latest_message.get("text") or "")
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        return []


class Inform(Action):
    """ "人民医院" out of the blue: offer the services that take a hospital."""

    def name(self) -> str:
        return "action_inform"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        entities = {e["entity"]: e["value"] for e in tracker.latest_message.get("entities", [])}
        answer = services_for_entities(entities)
        dispatcher.utter_message(text=answer.text, buttons=answer.buttons)
        return []


class RestartService(Action):
    """Declared for rules that restart a service with new slots; kept minimal on purpose."""

    def name(self) -> str:
        return "action_restart_service"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        return []
