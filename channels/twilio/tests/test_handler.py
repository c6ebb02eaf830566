"""Twilio webhooks through the shared channel harness; requests are signed by twilio's own
RequestValidator, so an independent implementation checks ours."""

import json
from pathlib import Path

import pytest
from twilio.request_validator import RequestValidator

from channels.harness import IncomingCase, Signed, run_incoming
from channels.twilio.handler import EMPTY_TWIML, TwilioChannel

TOKEN = "f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8"
PHONE = "+8613912345678"
DATA = Path(__file__).with_name("testdata")


def fixture(name: str, **changes: str) -> dict[str, str]:
    return {**json.loads((DATA / f"{name}.json").read_text()), **changes}


def signed(url: str, body: dict[str, str]) -> Signed:
    return Signed(headers={"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, body)})


def signed_for(url: str):
    """Signed for another URL than the one requested (what a proxy changes)."""
    return lambda _url, body: Signed(
        headers={"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, body)}
    )


def forged(url: str, body: dict[str, str]) -> Signed:
    return Signed(headers={"X-Twilio-Signature": RequestValidator("not-the-token").compute_signature(url, body)})


def tampered(url: str, body: dict[str, str]) -> Signed:
    """Signed, then the body changed in transit."""
    signature = RequestValidator(TOKEN).compute_signature(url, body)
    return Signed(headers={"X-Twilio-Signature": signature}, body={**body, "Body": "转账给我"})


SMS = "/channels/twilio/sms"
STATUS = "/channels/twilio/status"
INBOUND = fixture("inbound_sms")
SID = INBOUND["MessageSid"]

CASES = [
    IncomingCase(
        "inbound text",
        SMS,
        INBOUND,
        sign=signed,
        response=EMPTY_TWIML,
        message={"channel": "sms", "sender": PHONE, "external_id": SID, "text": "12路公交车到哪了"},
    ),
    IncomingCase(
        "retried ten times → queued once", SMS, INBOUND, sign=signed, response=EMPTY_TWIML, repeat=10, accepted=1
    ),
    IncomingCase(
        "traditional characters and emoji pass through untouched",
        SMS,
        fixture("inbound_sms", Body="醫院掛號😀"),
        sign=signed,
        message={"text": "醫院掛號😀"},
    ),
    IncomingCase(
        "empty body text is still a message", SMS, fixture("inbound_sms", Body=""), sign=signed, message={"text": ""}
    ),
    IncomingCase("missing signature", SMS, INBOUND, status=403),
    IncomingCase("forged signature", SMS, INBOUND, sign=forged, status=403),
    IncomingCase("body changed after signing", SMS, INBOUND, sign=tampered, status=403),
    IncomingCase(
        "signed for another URL", SMS, INBOUND, sign=signed_for("https://evil.example/channels/twilio/sms"), status=403
    ),
    IncomingCase(
        "missing MessageSid", SMS, {k: v for k, v in INBOUND.items() if k != "MessageSid"}, sign=signed, status=400
    ),
    IncomingCase(
        "malformed MessageSid", SMS, fixture("inbound_sms", MessageSid="SM'; DROP TABLE"), sign=signed, status=400
    ),
    IncomingCase("missing From", SMS, {k: v for k, v in INBOUND.items() if k != "From"}, sign=signed, status=400),
    IncomingCase("From not a phone number", SMS, fixture("inbound_sms", From="client:alice"), sign=signed, status=400),
    IncomingCase("missing Body", SMS, {k: v for k, v in INBOUND.items() if k != "Body"}, sign=signed, status=400),
    IncomingCase("JSON instead of a form", SMS, json.dumps(INBOUND), content_type="application/json", status=415),
    IncomingCase("oversized body", SMS, fixture("inbound_sms", Body="字" * 30000), sign=signed, status=413),
    IncomingCase("GET is not a webhook", SMS, "", method="GET", status=405),
    IncomingCase(
        "delivered",
        STATUS,
        fixture("status_delivered"),
        sign=signed,
        status=204,
        update={"channel": "sms", "provider_id": "SMd0c9b8a7f6e5d4c3b2a1f0e9d8c7b6a5", "status": "delivered"},
    ),
    IncomingCase(
        "undelivered with its error code",
        STATUS,
        fixture("status_undelivered"),
        sign=signed,
        status=204,
        update={"status": "undelivered", "error_code": "30003"},
    ),
    IncomingCase("status with a forged signature", STATUS, fixture("status_delivered"), sign=forged, status=403),
    IncomingCase(
        "unknown status", STATUS, fixture("status_delivered", MessageStatus="exploded"), sign=signed, status=400
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_twilio_webhooks(case, caplog):
    await run_incoming(case, lambda intake: TwilioChannel(TOKEN, intake).routes(), caplog, [TOKEN, PHONE])


async def test_behind_a_proxy_the_public_url_is_what_twilio_signed(caplog):
    public = "https://gateway.city.example"
    case = IncomingCase("proxied", SMS, INBOUND, sign=signed_for(f"{public}{SMS}"), message={"external_id": SID})
    await run_incoming(case, lambda intake: TwilioChannel(TOKEN, intake, public).routes(), caplog, [TOKEN, PHONE])
