"""The domain's tables: the city's reference data (seeded from the data pack) and what citizens do with
the city's services. Money is stored in fen (1/100 yuan) as integers; times are timezone-aware UTC.

`citizen_id` names a citizen of whoever runs the domain (the gateway's citizen table) by id; the domain
never reads that table. The foreign keys to it are the gateway's to declare (gateway.db.models): here
they would make every write need the gateway's table loaded in the process."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from common.clock import utcnow

# --- the city's reference data (seeded from the data pack) ------------------------------------


class District(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)


class Community(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    district_id: str = Field(foreign_key="district.id", index=True)


class Hospital(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    district_id: str = Field(foreign_key="district.id")
    address: str = ""
    phone: str = ""


class Cinema(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    district_id: str = Field(foreign_key="district.id")
    address: str = ""


class BankBranch(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    district_id: str = Field(foreign_key="district.id")
    address: str = ""
    hours: str = ""


class UtilityAccount(SQLModel, table=True):
    account_no: str = Field(primary_key=True, max_length=20)
    kind: str = Field(max_length=16)  # water | electricity | gas | heating
    holder: str = Field(max_length=32)
    address: str = ""
    period: str = Field(max_length=7)  # billing period "2026-11"
    amount_due_fen: int = 0
    balance_fen: int = 0


# --- what citizens do ---------------------------------------------------------------------------


class AppointmentSlot(SQLModel, table=True):
    """Capacity of one hospital department for one half-day; booked is raised atomically."""

    __table_args__ = (UniqueConstraint("hospital_id", "department_id", "day", "period"),)
    id: int | None = Field(default=None, primary_key=True)
    hospital_id: str = Field(foreign_key="hospital.id")
    department_id: str = Field(max_length=32)
    day: date
    period: str = Field(max_length=8)
    capacity: int
    booked: int = 0


class Screening(SQLModel, table=True):
    """One showing on one day; sold is raised atomically, seats are handed out in order."""

    __table_args__ = (UniqueConstraint("showing_id", "day", "time"),)
    id: int | None = Field(default=None, primary_key=True)
    showing_id: str = Field(max_length=32)
    day: date
    time: str = Field(max_length=5)
    capacity: int
    sold: int = 0


class Booking(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True, max_length=20)
    service_id: str = Field(max_length=64, index=True)
    citizen_id: int | None = Field(default=None, index=True)
    holder: str | None = Field(default=None, max_length=48, index=True)  # whose share it counts in (intents/limits.py)
    conversation_id: str | None = Field(default=None, max_length=40)
    status: str = Field(default="confirmed", max_length=16)  # held (awaiting payment) | confirmed | cancelled
    slot_id: int | None = Field(default=None, foreign_key="appointmentslot.id")
    resource_slot_id: int | None = Field(default=None, foreign_key="resourceslot.id")
    screening_id: int | None = Field(default=None, foreign_key="screening.id")
    quantity: int = 1
    amount_fen: int = 0
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    cancelled_at: datetime | None = None


class Payment(SQLModel, table=True):
    """One payment per account and billing period: a repeated confirm cannot pay twice."""

    __table_args__ = (UniqueConstraint("account_no", "period"),)
    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True, max_length=24)
    account_no: str = Field(foreign_key="utilityaccount.account_no", index=True)
    period: str = Field(max_length=7)
    amount_fen: int
    citizen_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class PaymentOrder(SQLModel, table=True):
    """A payment asked of the payment provider (WeChat Pay): a bill or a held booking (cinema tickets) is
    paid only when the provider's verified notification settles its order. pending_key ("account_no:
    period" or "booking:<id>") is set while pending and NULL after: unique, so a bill or a booking never
    has two payable orders at once (NULLs do not collide). A paid order whose money goes back carries
    out_refund_no; refund_status follows the refund: requested (not yet accepted by the provider) →
    processing → success."""

    id: int | None = Field(default=None, primary_key=True)
    out_trade_no: str = Field(unique=True, max_length=32)
    kind: str = Field(default="bill", max_length=16)  # bill | booking
    account_no: str | None = Field(default=None, foreign_key="utilityaccount.account_no", index=True)
    period: str | None = Field(default=None, max_length=7)
    booking_id: int | None = Field(default=None, foreign_key="booking.id", index=True)
    amount_fen: int
    citizen_id: int | None = Field(default=None, index=True)
    conversation_id: str | None = Field(default=None, max_length=40)  # where the citizen asked: told there
    status: str = Field(default="pending", max_length=16)  # pending | paid | closed
    pending_key: str | None = Field(default=None, unique=True, max_length=40)
    code_url: str | None = Field(default=None, max_length=256)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    paid_at: datetime | None = None
    transaction_id: str | None = Field(default=None, max_length=64)
    payment_ref: str | None = Field(default=None, max_length=24)  # the Payment row it made
    out_refund_no: str | None = Field(default=None, unique=True, max_length=64)
    refund_status: str | None = Field(default=None, max_length=16, index=True)
    refund_reason: str | None = Field(default=None, max_length=80)
    refunded_at: datetime | None = None


class QueueTicket(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("branch_id", "business_type", "day", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    branch_id: str = Field(foreign_key="bankbranch.id")
    business_type: str = Field(max_length=16)
    day: date
    number: int
    ticket: str = Field(max_length=8)
    citizen_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ResourceSlot(SQLModel, table=True):
    """Capacity of one bookable place (a vaccination clinic, a registry office…) for one half-day."""

    __table_args__ = (UniqueConstraint("service_id", "place_id", "day", "period"),)
    id: int | None = Field(default=None, primary_key=True)
    service_id: str = Field(max_length=64)
    place_id: str = Field(max_length=64)
    day: date
    period: str = Field(max_length=8)
    capacity: int
    booked: int = 0


class Application(SQLModel, table=True):
    """An application, complaint or request a citizen submitted. Its status follows from its age, except
    for a 12345 work order (a service with `work_order` in its params: complaints, suggestions), whose
    status staff set in the agents' inbox: 受理 → 转办 → 办理中 → 已办结 (the citizen is told each change)."""

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True, max_length=20)
    service_id: str = Field(max_length=64, index=True)
    citizen_id: int | None = Field(default=None, index=True)
    holder: str | None = Field(default=None, max_length=48, index=True)  # whose share it counts in (intents/limits.py)
    conversation_id: str | None = Field(default=None, max_length=40)
    text: str = ""
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    status: str | None = Field(default=None, max_length=16, index=True)  # a work order's, set by staff
    status_at: datetime | None = None


class HolderLock(SQLModel, table=True):
    """One row per citizen (intents/limits.py `holder`), locked while one of their bookings counts their
    share, so that two of their requests at once are counted one after the other."""

    holder: str = Field(primary_key=True, max_length=48)
    uses: int = 0


class Subscription(SQLModel, table=True):
    """A citizen's opt-in to alerts on a topic (air quality, weather, road closures…)."""

    __table_args__ = (UniqueConstraint("citizen_id", "topic"),)
    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(index=True)
    topic: str = Field(max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow)


class TopUp(SQLModel, table=True):
    """A mobile phone top-up."""

    id: int | None = Field(default=None, primary_key=True)
    ref: str = Field(unique=True, max_length=20)
    phone: str = Field(max_length=16, index=True)
    amount_fen: int
    citizen_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
