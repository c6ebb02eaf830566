"""The OutOfScope action tells whoever runs the bot how the turn went when it could not serve the
question — declined, not understood, or only guessed at — in a custom message next to its reply (the
gateway keeps those questions for staff, gateway/inbound/bridge.py). The real rasa-sdk action runs
in-process on trackers as Rasa builds them; the catalogue is the real one."""

from __future__ import annotations

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.actions.core import OutOfScope
from intents.menu import OUTCOME_KEY
from intents.services import catalogue


def tracker(text: str, intent: str, ranking: list[dict] | None = None) -> Tracker:
    return Tracker(
        sender_id="session-outcome-123456",
        slots={},
        latest_message={"text": text, "intent": {"name": intent}, "intent_ranking": ranking or [], "entities": []},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name=None,
    )


async def outcome_of(t: Tracker) -> tuple[str, str | None]:
    dispatcher = CollectingDispatcher()
    await OutOfScope().run(dispatcher, t, {})
    texts = [m["text"] for m in dispatcher.messages if m.get("text")]
    outcomes = [m["custom"][OUTCOME_KEY] for m in dispatcher.messages if m.get("custom")]
    assert len(texts) == 1 and len(outcomes) <= 1, dispatcher.messages
    return texts[0], outcomes[0] if outcomes else None


async def test_out_of_scope_is_declined():
    text, outcome = await outcome_of(tracker("你有男朋友没", "out_of_scope"))
    assert text.startswith("抱歉") and outcome == "declined"


async def test_unsure_with_nothing_plausible_is_not_understood():
    text, outcome = await outcome_of(
        tracker("嗯嗯啊啊那个那个", "nlu_fallback", [{"name": "greet", "confidence": 0.05}])
    )
    assert text.startswith("抱歉") and outcome == "not_understood"


async def test_unsure_with_candidates_is_a_guess():
    service = catalogue().services[0]
    ranking = [{"name": service.intent, "confidence": 0.4}]
    text, outcome = await outcome_of(tracker("那个事咋办", "nlu_fallback", ranking))
    assert service.name and outcome == "suggested" and not text.startswith("抱歉")


@pytest.mark.parametrize("pressed", ["/out_of_scope", "/nlu_fallback"])
async def test_a_button_payload_is_no_question_of_the_citizens(pressed):
    _, outcome = await outcome_of(tracker(pressed, "out_of_scope"))
    assert outcome is None
