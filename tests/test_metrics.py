"""GET /metrics as Prometheus scrapes it: parsed with prometheus_client's own parser, every family an
operator's dashboard reads is there, and one SMS turn (signed Twilio webhook → turn → dispatcher →
the local Twilio server) and one web chat turn move the counters they should. The real gateway app, in
process, with the stand-in Rasa (tests/fake_rasa.py); the protection of the endpoint is checked too."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twilio.request_validator import RequestValidator

from gateway.metrics import family_names
from providers.twilio_api import LocalTwilio
from tests.fake_rasa import Gateway, running_gateway

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:twilio")

SID, TOKEN = "AC" + "0" * 31 + "7", "metrics-test-twilio-token"
CITIZEN = "+8613912345678"
REPO = Path(__file__).resolve().parent.parent

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(gw: Gateway, **headers: str) -> tuple[int, str]:
    async with gw.client.get("/metrics", headers=headers) as response:
        return response.status, await response.text()


def parse(text: str) -> tuple[set[str], Samples]:
    families, samples = set(), {}
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def sms_from_citizen(gw: Gateway, text: str, sid: str) -> None:
    url = str(gw.client.make_url("/channels/twilio/sms"))
    form = {"From": CITIZEN, "To": "+8610690000123", "Body": text, "MessageSid": sid, "AccountSid": SID}
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    async with gw.client.post("/channels/twilio/sms", data=form, headers={"X-Twilio-Signature": signature}) as r:
        assert r.status == 200, await r.text()


async def wait_for(predicate, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def twilio_settings(twilio: LocalTwilio, **more: Any) -> dict[str, Any]:
    return {
        "twilio_account_sid": SID,
        "twilio_auth_token": TOKEN,
        "twilio_api_base": twilio.url,
        "sms_rate": 0,
        "local_providers": False,
        **more,
    }


async def test_a_scrape_has_every_family_and_sms_and_web_chat_turns_move_the_counters(template, tmp_path, rasa):
    async with (
        LocalTwilio(SID, TOKEN) as twilio,
        running_gateway(template, tmp_path, rasa, **twilio_settings(twilio)) as gw,
    ):
        status, before_text = await scrape(gw)
        assert status == 200
        families, before = parse(before_text)
        assert family_names() <= families, family_names() - families
        # levels read at scrape time: the breaker is closed, the queues are empty
        assert value(before, "citygw_breaker_state", state="closed") == 1
        assert value(before, "citygw_breaker_state", state="open") == 0
        assert ("citygw_queue_depth", (("priority", "reply"), ("queue", "outbound"), ("state", "ready"))) in before

        await sms_from_citizen(gw, "12路到哪了", "SM" + "a" * 32)
        await sms_from_citizen(gw, "12路到哪了", "SM" + "a" * 32)  # Twilio's retry of the same message
        await wait_for(lambda: any(m.to == CITIZEN for m in twilio.messages))
        session = await gw.new_session()
        status, _ = await gw.say(session, "你好")
        assert status == 200

        async def after_sent() -> str:
            for _ in range(100):  # the dispatcher counts the send just after the provider took it
                _, text = await scrape(gw)
                samples = parse(text)[1]
                if value(samples, "citygw_outbound_messages_total", channel="sms", outcome="sent") > value(
                    before, "citygw_outbound_messages_total", channel="sms", outcome="sent"
                ):
                    return text
                await asyncio.sleep(0.05)
            raise AssertionError("the SMS send was never counted")

        after_text = await after_sent()
        after = parse(after_text)[1]

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("citygw_inbound_messages_total", channel="sms") == 1
    assert moved("citygw_inbound_duplicates_total", channel="sms") == 1
    assert moved("citygw_inbound_messages_total", channel="webchat") == 1
    assert moved("citygw_turns_total", channel="sms", result="answered") == 1
    assert moved("citygw_turns_total", channel="webchat", result="answered") == 1
    assert moved("citygw_turn_duration_seconds_count", channel="sms") == 1
    assert moved("citygw_rasa_request_duration_seconds_count") == 2
    assert moved("citygw_outbound_messages_total", channel="sms", outcome="queued") == 1
    assert moved("citygw_outbound_messages_total", channel="sms", outcome="sent") == 1
    assert moved("citygw_outbound_messages_total", channel="webchat", outcome="sent") == 1
    assert moved("citygw_provider_request_duration_seconds_count", channel="sms") == 1
    # labels never carry a phone number, an openid or an id
    assert "13912345678" not in before_text + after_text


async def test_rasa_failures_and_the_open_breaker_show(template, tmp_path, rasa):
    async with running_gateway(template, tmp_path, rasa, breaker_failures=1, breaker_reset_s=60) as gw:
        _, text = await scrape(gw)
        before = parse(text)[1]
        rasa.fail_with(500)
        session = await gw.new_session()
        await gw.say(session, "12路到哪了")
        await gw.say(session, "12路到哪了", message_id="second")
        _, text = await scrape(gw)
        after = parse(text)[1]
    assert value(after, "citygw_breaker_state", state="open") == 1
    assert value(after, "citygw_breaker_state", state="closed") == 0
    assert (
        value(after, "citygw_rasa_failures_total", reason="http")
        - value(before, "citygw_rasa_failures_total", reason="http")
        == 1
    )
    assert (
        value(after, "citygw_rasa_failures_total", reason="circuit_open")
        - value(before, "citygw_rasa_failures_total", reason="circuit_open")
        == 1
    )
    assert (
        value(after, "citygw_turns_total", channel="webchat", result="bot_failed")
        - value(before, "citygw_turns_total", channel="webchat", result="bot_failed")
        == 2
    )


async def test_with_a_token_a_scrape_must_carry_it_and_a_refusal_says_why(template, tmp_path, rasa):
    async with running_gateway(template, tmp_path, rasa, metrics_token="scrape-secret-0123") as gw:
        status, text = await scrape(gw)
        assert status == 401 and "CITYGW_METRICS_TOKEN" in text
        status, text = await scrape(gw, Authorization="Bearer wrong")
        assert status == 403 and "令牌不正确" in text
        status, text = await scrape(gw, Authorization="Bearer scrape-secret-0123")
        assert status == 200 and "citygw_turns_total" in text


async def test_without_a_token_a_forwarded_scrape_is_refused(template, tmp_path, rasa):
    async with running_gateway(template, tmp_path, rasa) as gw:
        status, text = await scrape(gw, **{"X-Forwarded-For": "203.0.113.9"})
    assert status == 403 and "CITYGW_METRICS_TOKEN" in text


# --- deploy/: the scrape config and the dashboard name metrics that exist ---------------------------

METRIC = re.compile(r"\bcitygw_[a-z_]+")
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _family(sample_name: str) -> str:
    for suffix in SUFFIXES:
        if sample_name.endswith(suffix):
            return sample_name.removesuffix(suffix)
    return sample_name


def test_every_dashboard_panel_queries_a_metric_family_that_exists():
    dashboard = json.loads((REPO / "deploy" / "grafana-dashboard.json").read_text())
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    assert len(panels) >= 8
    known = family_names()
    for panel in panels:
        expressions = [t["expr"] for t in panel.get("targets", [])]
        assert expressions, f"panel {panel['title']!r} queries nothing"
        for expr in expressions:
            named = METRIC.findall(expr)
            assert named, f"{panel['title']!r}: {expr!r} names no citygw metric"
            unknown = {n for n in named if _family(n) not in known}
            assert not unknown, f"{panel['title']!r} queries {unknown}, which /metrics does not expose"


def test_the_scrape_config_scrapes_metrics_with_the_token():
    import yaml

    config = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    gateway = jobs["citygw-gateway"]
    assert gateway["metrics_path"] == "/metrics"
    assert gateway["authorization"]["type"] == "Bearer"


async def test_an_outcome_the_gateway_does_not_know_is_neither_a_label_nor_kept(template, tmp_path, rasa):
    async with running_gateway(template, tmp_path, rasa) as gw:
        rasa.answer_raw([{"text": "好的"}, {"custom": {"turn_outcome": "x" * 60}}])
        session = await gw.new_session()
        status, body = await gw.say(session, "随便说说")
        _, text = await scrape(gw)
        kept = gw.query("SELECT * FROM unansweredquestion")
    assert status == 200 and [r["text"] for r in body["replies"]] == ["好的"]
    assert "x" * 60 not in text and kept == []
