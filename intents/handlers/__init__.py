"""Handler kinds: a few generic behaviours that the catalogue's services are built from.

A handler is `async def run(service, ctx) -> Answer`; services that confirm before acting also
have `async def summary(service, ctx) -> str`. Register new kinds in HANDLERS / SUMMARIES."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from intents.handlers import (
    culture,
    education,
    finance,
    generic,
    health,
    live,
    places,
    transport,
    travel,
    triage,
    utilities,
)
from intents.runtime import Answer, Context
from intents.services import Service

Run = Callable[[Service, Context], Awaitable[Answer]]
Summary = Callable[[Service, Context], Awaitable[str]]

HANDLERS: dict[str, Run] = {
    "bus_arrival": transport.bus_arrival,
    "bus_line_info": transport.bus_line_info,
    "hospital_appointment": health.book_appointment,
    "hospital_appointment_cancel": health.cancel_appointment,
    "movie_showtimes": culture.showtimes,
    "movie_ticket_booking": culture.book_tickets,
    "movie_ticket_refund": culture.refund_tickets,
    "bill_query": utilities.bill_query,
    "bill_payment": utilities.pay_bill,
    "bank_queue_ticket": finance.queue_ticket,
    "bank_branch_info": finance.branch_info,
    "bus_route": transport.bus_route,
    "bus_stop_lines": transport.bus_stop_lines,
    "phone_topup": utilities.phone_topup,
    "school_notices": education.school_notices,
    "travel": travel.travel,
    "symptom_triage": triage.symptom_triage,
    "place_directions": places.place_directions,
    # generic kinds: most services are one of these plus data
    "info": generic.info,
    "lookup": generic.lookup,
    "booking": generic.booking,
    "booking_cancel": generic.booking_cancel,
    "application": generic.application,
    "application_status": generic.application_status,
    "subscription": generic.subscription,
    "live": live.live,
}
SUMMARIES: dict[str, Summary] = {
    "hospital_appointment": health.summary,
    "movie_ticket_booking": culture.summary,
    "bill_payment": utilities.summary,
    "phone_topup": utilities.topup_summary,
    "booking": generic.booking_summary,
    "application": generic.application_summary,
    "bank_queue_ticket": finance.summary,
}


async def run_service(service: Service, ctx: Context) -> Answer:
    return await HANDLERS[service.handler](service, ctx)


# Transactions that can turn out to have nothing to do once their slots are known (a bill already paid):
# the form ends there and the service says so, instead of asking "确认" for nothing.
NOTHING_TO_DO: dict[str, Callable[[Service, Context], Awaitable[bool]]] = {
    "bill_payment": utilities.nothing_due,
    "bank_queue_ticket": finance.branch_closed,
}


async def nothing_to_confirm(service: Service, ctx: Context) -> bool:
    check = NOTHING_TO_DO.get(service.handler)
    return await check(service, ctx) if check else False


async def summarise(service: Service, ctx: Context) -> str:
    summary = SUMMARIES.get(service.handler)
    return await summary(service, ctx) if summary else f"您要办理“{service.name}”。"
