"""CITYGW_LOG_FORMAT=json: one SMS turn, from Twilio's signed webhook to the provider send, leaves log
lines that share one trace id — the same id the turn's metadata carries to Rasa — and none of them
holds the citizen's phone number unmasked. The real gateway app in process, the stand-in Rasa (it
records the metadata it was sent) and the local Twilio server."""

from __future__ import annotations

import io
import json
import logging

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from common.logfilter import MaskingFilter
from common.trace import JsonFormatter
from gateway.logs import mask, setup_logging
from providers.twilio_api import LocalTwilio
from tests.fake_rasa import running_gateway
from tests.test_metrics import CITIZEN, SID, TOKEN, sms_from_citizen, twilio_settings, wait_for

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:twilio")


@pytest.fixture
def json_log():
    """The gateway's own JSON logging set-up, writing to a buffer; the test's logging restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    buffer = io.StringIO()
    setup_logging("INFO", "json", stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


async def test_one_sms_turn_logs_one_trace_id_and_no_phone_number(template, tmp_path, rasa, json_log):
    async with (
        LocalTwilio(SID, TOKEN) as twilio,
        running_gateway(template, tmp_path, rasa, **twilio_settings(twilio)) as gw,
    ):
        await sms_from_citizen(gw, "12路到哪了，我电话13912345678", "SM" + "b" * 32)
        await wait_for(lambda: any(m.to == CITIZEN for m in twilio.messages))
        await wait_for(lambda: "sent message:" in json_log.getvalue())
    lines = [json.loads(line) for line in json_log.getvalue().splitlines() if line.strip()]
    assert lines, "nothing was logged"
    sent_to_rasa = rasa.requests[-1]["metadata"]["trace_id"]

    def line(fragment: str) -> dict:
        found = [entry for entry in lines if fragment in entry["message"]]
        assert found, f"no log line with {fragment!r} in {[e['message'] for e in lines]}"
        return found[0]

    story = [line("sms message from"), line("turn on sms"), line("sent message:")]
    assert {entry.get("trace_id") for entry in story} == {sent_to_rasa}
    assert all(entry["level"] and entry["logger"] and entry["time"] for entry in story)
    # the webhook's sender is masked where it is named, and the number never appears in full
    assert mask(CITIZEN) in line("sms message from")["message"]
    text = json_log.getvalue()
    assert "13912345678" not in text and "8613912345678" not in text


async def test_each_web_chat_message_gets_its_own_trace_id(template, tmp_path, rasa, json_log):
    async with running_gateway(template, tmp_path, rasa) as gw:
        session = await gw.new_session()
        await gw.say(session, "你好", message_id="one")
        await gw.say(session, "12路到哪了", message_id="two")
    first, second = (r["metadata"]["trace_id"] for r in rasa.requests[-2:])
    assert first and second and first != second
    turns = [json.loads(line) for line in json_log.getvalue().splitlines() if "turn on webchat" in line]
    assert [t["trace_id"] for t in turns] == [first, second]


async def test_the_action_server_logs_under_the_trace_id_the_turn_carried(monkeypatch):
    """The trace id rides in the turn's metadata to the action server: what an action logs carries it
    (bot/actions/safety.py binds it around every action). A failing action is the line it writes."""
    import bot.actions.core as core

    def broken(text):
        raise KeyError("menu")

    monkeypatch.setattr(core, "out_of_scope", broken)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("bot.actions")
    logger.addHandler(handler)
    try:
        tracker = Tracker(
            sender_id="session-trace-0123456789",
            slots={},
            latest_message={
                "text": "写首诗",
                "intent": {"name": "out_of_scope"},
                "entities": [],
                "metadata": {"trace_id": "0123456789abcdef"},
            },
            events=[],
            paused=False,
            followup_action=None,
            active_loop={},
            latest_action_name=None,
        )
        await core.OutOfScope().run(CollectingDispatcher(), tracker, {})
    finally:
        logger.removeHandler(handler)
    (line,) = [json.loads(text) for text in buffer.getvalue().splitlines()]
    assert line["trace_id"] == "0123456789abcdef" and line["level"] == "ERROR"
    assert "session-trace-0123456789" not in line["message"]  # the conversation id is masked
