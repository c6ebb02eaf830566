"""An action server package for tests/test_rasa_logs.py: action_help fails outside any guard, with an
error text that quotes who asked, as careless code would. The real rasa-sdk server then answers Rasa
with a 500 that quotes the whole tracker, and Rasa logs that answer."""

from __future__ import annotations

from rasa_sdk import Action

PHONE = "13912345678"


class BrokenHelp(Action):
    def name(self) -> str:
        return "action_help"

    async def run(self, dispatcher, tracker, domain):
        raise RuntimeError(f"help for {tracker.sender_id} (phone {PHONE}) failed")
