"""Every service in the catalogue is complete and works: its data is consistent, and its own
conversation (the `test` in its catalogue entry) ends in the data-backed answer through the web chat
REST endpoint, the real Rasa server and the action server. Adding a service without a working path
fails here."""

from __future__ import annotations

import pytest
from sqlmodel import select

from gateway.db.models import Application, Booking, ChannelIdentity, Subscription
from intents.city.tables import default_tables
from intents.handlers import HANDLERS, SUMMARIES
from intents.services import annotated_entities, load_catalogue
from tests.conftest import Chat
from tests.test_sms_wechat import Phone

CATALOGUE = load_catalogue()
SERVICES = CATALOGUE.services
TABLES = default_tables()
MIN_EXAMPLES = 12


def test_catalogue_is_large_enough():
    assert len(SERVICES) >= 140, len(SERVICES)
    assert len(CATALOGUE.families) >= 12


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
def test_service_entry_is_complete(service):
    assert service.handler in HANDLERS, f"unknown handler kind {service.handler}"
    assert len(service.examples) >= MIN_EXAMPLES
    assert service.test, "every service needs a conformance conversation"
    if service.confirm:
        assert service.handler in SUMMARIES, "a confirmed service must be able to summarise itself"
    table = service.params.get("table")
    if table is not None:
        assert table in TABLES, f"missing data/karamay/tables/{table}.yaml"
        names = {n for r in TABLES[table].records for n in r.names}
        for example in service.examples:
            for value, entity in annotated_entities(example):
                if entity == "item":
                    assert value in names, f"{value!r} is not a record of {table}"
    if service.handler == "booking":
        assert service.required == ["item", "date", "period"] and service.confirm
        assert all(r.capacity for r in TABLES[table].records), "bookable records need a capacity"
    if service.handler == "lookup":
        assert service.params["key_slot"] in service.required
        assert all(r.key for r in TABLES[table].records), "lookup records need a key"


def _citizen(stack, chat: Chat) -> int:
    with stack.db() as db:
        identity = db.exec(select(ChannelIdentity).where(ChannelIdentity.address == chat.session)).one()
        return identity.citizen_id


def _owner(service) -> str:
    """The phone of the person whose record the service's test conversation asks for."""
    table = TABLES[service.params["table"]]
    return next(r.owner for r in table.records if r.key and r.key in service.test[0].say)


async def _as_owner(service, http, stack) -> None:
    """A personal record is shown only to its owner: the conversation is theirs, by SMS from their phone."""
    phone = Phone(http, stack, number=_owner(service))
    for turn in service.test:
        text = await phone.say(turn.say)
        missing = [e for e in turn.expect if e not in text]
        assert not missing, f"{turn.say!r} → {text!r} lacks {missing}"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.id)
async def test_service_conversation(service, http, stacks):
    stack = stacks["sqlite"]
    if service.personal:
        await _as_owner(service, http, stack)
        return
    chat = Chat(http, stack)
    for turn in service.test:
        await chat.say(turn.say)
        missing = [e for e in turn.expect if e not in chat.text]
        assert not missing, f"{turn.say!r} → {chat.text!r} lacks {missing}"
    citizen = _citizen(stack, chat)
    with stack.db() as db:
        if service.handler == "booking":
            assert db.exec(select(Booking).where(Booking.citizen_id == citizen, Booking.service_id == service.id)).all()
        elif service.handler == "application":
            assert db.exec(
                select(Application).where(Application.citizen_id == citizen, Application.service_id == service.id)
            ).all()
        elif service.handler == "subscription":
            rows = db.exec(
                select(Subscription).where(
                    Subscription.citizen_id == citizen, Subscription.topic == service.params["topic"]
                )
            ).all()
            assert len(rows) == (0 if service.params.get("action") == "unsubscribe" else 1)
