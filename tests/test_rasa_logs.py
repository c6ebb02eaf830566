"""What Rasa and the action server log names no citizen: phone numbers, openids, web chat session ids
(the chat's only credential) and conversation ids are masked (common/logfilter.py, bot/logging.yml).

The real Rasa server and the real rasa-sdk action server run as `citygw run` starts them; an action
fails outside any guard (tests/broken_actions.py), which makes the action server quote the whole
tracker back to Rasa and Rasa log it. Records shaped like Rasa's own are checked in-process too."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from channels.webchat.handler import _inbound
from channels.webchat.sessions import SessionIds
from common.logfilter import MaskingFilter, install, mask_text
from gateway.config import Settings
from gateway.inbound.bridge import RasaBridge
from gateway.rasa_env import start_actions, start_rasa, stop, train, wait_http
from tests.broken_actions import PHONE
from tests.stack import free_port

OPENID = "oKrmY5xJ0v1XbQ2d3Wc4Ea5Rf6Tg"


async def _never_used(_session: str) -> None:
    return None


def new_session() -> str:
    """A web chat session id as the server mints them."""
    return SessionIds(b"rasa-logs-test-secret-0123456", _never_used).mint()


@pytest.fixture
def masking():
    previous = logging.getLogRecordFactory()
    install()
    yield
    logging.setLogRecordFactory(previous)


def captured(name: str, *filters: logging.Filter) -> tuple[logging.Logger, io.StringIO]:
    """A logger with a handler of its own that does not propagate, as Sanic's loggers are set up."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s - %(message)s"))
    for f in filters:
        handler.addFilter(f)
    logger = logging.getLogger(f"{name}.{uuid.uuid4().hex[:6]}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, out


class ClientResponseError(Exception):
    """rasa.utils.endpoints.ClientResponseError as Rasa 3.6 defines it: the body is in its text."""

    def __init__(self, status: int, message: str, text: bytes) -> None:
        super().__init__(f"{status}, {message}, body='{text!r}'")


def action_server_500(session: str, conversation: str) -> bytes:
    """The action server's reply to a failed action: its error and the request, tracker and all."""
    metadata = {"channel": "webchat", "message_id": f"{session}:{uuid.uuid4().hex}", "citizen_id": 7}
    events = [{"event": "user", "text": f"我的手机号{PHONE}", "metadata": metadata, "message_id": uuid.uuid4().hex}]
    request = {
        "next_action": "action_help",
        "sender_id": conversation,
        "tracker": {"sender_id": conversation, "events": events},
    }
    return json.dumps({"error": f"help for {conversation} failed", "request_body": request}).encode()


def test_rasa_action_error_record_is_masked_traceback_and_all(masking) -> None:
    session, conversation = new_session(), uuid.uuid4().hex
    logger, out = captured("rasa.core.processor")
    try:
        try:
            raise ClientResponseError(500, "Internal Server Error", action_server_500(session, conversation))
        except ClientResponseError as exc:
            raise RuntimeError("Failed to execute custom action 'action_help'") from exc
    except RuntimeError:
        # rasa/core/processor.py, MessageProcessor._run_action
        logger.exception(
            "Encountered an exception while running action 'action_help'."
            "Bot will continue, but the actions events are lost. "
            "Please check the logs of your action server for more information."
        )
    text = out.getvalue()
    assert "Failed to execute custom action 'action_help'" in text and "request_body" in text
    for secret in (session, conversation, PHONE):
        assert secret not in text
    assert f"{session[:3]}***" in text and f"{conversation[:3]}***{conversation[-3:]}" in text
    assert f"{PHONE[:3]}****{PHONE[-4:]}" in text


def test_records_are_masked_whichever_handler_prints_them(masking) -> None:
    conversation = uuid.uuid4().hex
    logger, out = captured("sanic.error")  # no filter on this handler: the record comes masked
    logger.error(
        "Exception occurred while handling uri: %s", f"'http://127.0.0.1:5005/conversations/{conversation}/tracker'"
    )
    logger.info("WeChat event from %s", OPENID)
    text = out.getvalue()
    assert conversation not in text and OPENID not in text
    assert f"/conversations/{conversation[:3]}***" in text and "oKr***6Tg" in text


def test_a_handler_filter_alone_masks_too() -> None:
    session = new_session()
    logger, out = captured("rasa_sdk.endpoint", MaskingFilter())
    logger.error("request from %s", {"sender_id": session, "text": f"绑定+86{PHONE}"})
    text = out.getvalue()
    assert session not in text and PHONE not in text
    assert f"+86{PHONE[:3]}****{PHONE[-4:]}" in text


def test_names_in_code_and_ordinary_text_stay_readable() -> None:
    for text in (
        "Loading model models/1a2b3c4d5e6f7a8b.tar.gz",
        "Predicted next action 'action_svc_bus_line_info' with confidence 0.98.",
        "Received user message '5路公交车到哪了' with intent '{'name': 'svc_bus_arrival'}'",
        "DialogueStateTrackerNames ActionExecutionRejection out_of_scope_requests_123",
    ):
        assert mask_text(text) == text


async def test_rasa_and_action_server_logs_mask_the_web_chat_session(tmp_path) -> None:
    """The real servers, one web chat conversation, and an action that fails."""
    model = train(Settings())
    rasa_port, action_port = free_port(), free_port()
    rasa_log, actions_log = tmp_path / "rasa.log", tmp_path / "actions.log"
    processes = [start_actions(action_port, actions_log, actions="tests.broken_actions")]
    try:
        processes.append(start_rasa(Settings(), model, rasa_port, action_port, rasa_log))
        wait_http(f"http://127.0.0.1:{action_port}/health", 90, processes[0], actions_log)
        wait_http(f"http://127.0.0.1:{rasa_port}/status", 240, processes[1], rasa_log)

        session, conversation = new_session(), uuid.uuid4().hex
        bridge = RasaBridge(f"http://127.0.0.1:{rasa_port}", timeout_s=60, retries=0)
        try:
            for text in (f"我的手机号是{PHONE}", "/help"):  # the second turn runs action_help
                inbound = _inbound(session, uuid.uuid4().hex, text)
                metadata = {"channel": inbound.channel, "message_id": inbound.external_id, "citizen_id": 7}
                await bridge.turn(conversation, inbound.text, metadata)
        finally:
            await bridge.close()
    finally:
        for process in reversed(processes):
            stop(process)

    rasa, actions = rasa_log.read_text(errors="replace"), actions_log.read_text(errors="replace")
    # The failure was logged, quoting the tracker, and masked.
    assert "Encountered an exception while running action 'action_help'" in rasa
    assert "request_body" in rasa
    assert "Exception occurred during execution of request" in actions
    for log in (rasa, actions):
        for secret in (session, conversation, PHONE):
            assert secret not in log
    assert f"{session[:3]}***" in rasa
    assert f"{PHONE[:3]}****{PHONE[-4:]}" in rasa
    assert f"{conversation[:3]}***{conversation[-3:]}" in actions
