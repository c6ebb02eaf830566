"""The domain run without the gateway: what it needs from outside comes through its ports, and a port
nobody plugged in gets the citizen a polite answer, never someone's personal record unaudited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from intents import ports
from intents.city.tables import default_tables
from intents.handlers import run_service
from intents.runtime import Context, pack
from intents.services import catalogue

NOW = datetime(2026, 11, 25, 10, 0)
PENSION = default_tables()["social_pension_accounts"].records[0]


class AuditEntries:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict[str, Any]]] = []

    async def record(self, action: str, target: str, detail: dict[str, Any]) -> None:
        self.entries.append((action, target, detail))


def ctx(service_id: str, verified_phone: str | None, citizen_id: int | None = 7, **slots: str) -> Context:
    return Context(
        slots=dict(slots),
        citizen_id=citizen_id,
        conversation_id="t",
        text="",
        now=NOW,
        pack=pack(),
        sessions=None,  # type: ignore[arg-type]  # nothing here reads the domain's own tables
        service=catalogue().service(service_id),
        verified_phone=verified_phone,
        channel="sms",
    )


async def pension(verified_phone: str | None) -> str:
    service = catalogue().service("social_insurance_balance")
    context = ctx(service.id, verified_phone, id_number=PENSION.key)
    return (await run_service(service, context)).text


async def test_without_an_audit_trail_not_even_the_owner_sees_a_personal_record(monkeypatch):
    monkeypatch.setattr(ports.PORTS, "audit", None)
    text = await pension(PENSION.owner)
    assert "暂时无法查询" in text
    assert not any(str(value) in text for value in PENSION.fields.values()) and "王" not in text


async def test_with_an_audit_trail_the_owner_sees_it_and_the_read_is_recorded(monkeypatch):
    trail = AuditEntries()
    monkeypatch.setattr(ports.PORTS, "audit", trail)
    assert "王*军" in await pension(PENSION.owner)
    assert "王" not in await pension("+8613800000001")
    assert [(action, target) for action, target, _ in trail.entries] == [
        ("citizen.personal_record", f"social_pension_accounts:{PENSION.id}"),
        ("citizen.personal_record_refused", f"social_pension_accounts:{PENSION.id}"),
    ]
    assert trail.entries[0][2] == {"citizen_id": 7, "service": "social_insurance_balance", "channel": "sms"}


async def test_school_notices_without_anyone_who_sends_them_answer_politely(monkeypatch):
    monkeypatch.setattr(ports.PORTS, "school_notices", None)
    service = catalogue().service("school_notices")
    answer = await run_service(service, ctx(service.id, None))
    assert answer.text.startswith("抱歉") and "学校通知暂时无法查询" in answer.text


def test_an_unknown_port_is_refused_by_name():
    with pytest.raises(TypeError, match="no such port: weather"):
        ports.plug(weather=object())
