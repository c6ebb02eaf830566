"""Never silent: whatever fails inside an action, the citizen gets a Chinese answer with a reference.

The real rasa-sdk action classes run in-process against a real SQLite database; each handler kind is
made to fail (fault injection at the handler, the layer that talks to data) and the reply is checked."""

from __future__ import annotations

import logging

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

import bot.actions.services as service_actions
from bot.actions.core import OutOfScope
from intents import handlers, runtime
from intents.services import catalogue
from intents.settings import get_settings
from tests.stack import FIXED_NOW, fresh_database

KINDS = sorted({s.handler for s in catalogue().services})


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    url = fresh_database("sqlite", tmp_path_factory.mktemp("never_silent"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CITYGW_DATABASE_URL", url)
        mp.setenv("CITYGW_FIXED_NOW", FIXED_NOW)
        for cached in (get_settings, runtime.sessions):
            cached.cache_clear()
        yield url
        for cached in (get_settings, runtime.sessions):
            cached.cache_clear()


def tracker(text: str, slots: dict | None = None) -> Tracker:
    return Tracker(
        sender_id="session-abcdef123456",
        slots=slots or {},
        latest_message={"text": text, "intent": {"name": "x"}, "entities": []},
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name=None,
    )


def action_for(kind: str):
    service = next(s for s in catalogue().services if s.handler == kind)
    return getattr(service_actions, f"Svc_{service.id}")()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_failing_handler_still_answers_in_chinese(kind, database, monkeypatch, caplog):
    async def broken(service, ctx):
        raise RuntimeError("database went away 13912345678")

    monkeypatch.setitem(handlers.HANDLERS, kind, broken)
    action = action_for(kind)
    dispatcher = CollectingDispatcher()
    with caplog.at_level(logging.ERROR, logger="bot.actions"):
        events = await action.run(dispatcher, tracker("帮我办一下", {"confirmed": True}), {})
    [message] = dispatcher.messages
    assert "出了问题" in message["text"] and "问题编号" in message["text"]
    reference = message["text"].split("问题编号 ")[1][:6]
    assert reference in caplog.text, "the log names the reference the citizen was given"
    assert "13912345678" not in caplog.text and "session-abcdef123456" not in caplog.text
    # The half-done request is forgotten, so the next message starts clean.
    assert {e["name"]: e["value"] for e in events if e["event"] == "slot"}.get("request_text", None) is None


async def test_a_failing_conversation_action_still_answers(database, monkeypatch):
    import bot.actions.core as core

    def broken(text):
        raise KeyError("menu")

    monkeypatch.setattr(core, "out_of_scope", broken)
    dispatcher = CollectingDispatcher()
    await OutOfScope().run(dispatcher, tracker("写首诗"), {})
    assert "出了问题" in dispatcher.messages[0]["text"]


async def test_movie_tickets_named_in_one_sentence_are_understood_not_crashed(database):
    """The day as said ("明天") stayed in the slot of a form that does not ask for it, and the show
    time check read it as an ISO date: the citizen got no reply at all."""
    pack = runtime.pack()
    film = pack.films[0].title
    from intents import lookup

    cinema = lookup.cinemas_showing(pack, film)[0]
    time = lookup.show_times(pack, film, cinema)[-1]
    validate = service_actions.Validate_movie_ticket_booking()
    dispatcher = CollectingDispatcher()
    slots = {"film": film, "cinema": cinema, "date": "明天", "show_time": f"晚上{time}", "ticket_count": "两张"}
    t = tracker(f"买两张明天{time}{cinema}的{film}", slots)
    t.events = [{"event": "slot", "name": k, "value": v} for k, v in slots.items()]
    events = await validate.run(dispatcher, t, {"forms": {}, "slots": {}})
    values = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert not any("出了问题" in m["text"] for m in dispatcher.messages), dispatcher.messages
    assert values.get("show_time") == time and values.get("ticket_count") == "2"
