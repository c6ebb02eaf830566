"""Tables. Money is stored in fen (1/100 yuan) as integers; times are timezone-aware UTC.

The gateway's own tables (citizens, channels, conversations, staff, broadcasts, schools) are here; the
domain's (the city's reference data, bookings, payments, applications…) are intents.store.models',
imported here so that SQLModel.metadata, and so Alembic, sees every table, and under the names gateway
code has always imported them by."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, ForeignKeyConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from common.clock import utcnow
from common.database import table_of
from intents.store.models import (  # noqa: F401  (re-exported)
    Application,
    AppointmentSlot,
    BankBranch,
    Booking,
    Cinema,
    Community,
    District,
    Hospital,
    Payment,
    PaymentOrder,
    QueueTicket,
    ResourceSlot,
    Screening,
    Subscription,
    TopUp,
    UtilityAccount,
)

# The domain's rows name the citizen they belong to by id; the constraint (made by the migrations) is
# declared by the side that owns citizens.
for _domain_table in (Booking, Payment, PaymentOrder, QueueTicket, Application, Subscription, TopUp):
    table_of(_domain_table).append_constraint(ForeignKeyConstraint(["citizen_id"], ["citizen.id"]))


# --- citizens and their conversations --------------------------------------------------------


class Citizen(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    phone: str | None = Field(default=None, unique=True, max_length=32)
    display_name: str | None = Field(default=None, max_length=64)
    community_id: str | None = Field(default=None, foreign_key="community.id", index=True)
    sms_opted_out: bool = False
    preferred_channel: str = Field(default="sms", max_length=16)  # sms | wechat | webpush: where notices go first
    created_at: datetime = Field(default_factory=utcnow)


class ChannelIdentity(SQLModel, table=True):
    """How a citizen is reached on one channel: a web chat session, a phone number, a WeChat openid."""

    # (citizen_id, channel): a broadcast looks up each citizen's address per channel (migration 0006)
    __table_args__ = (
        UniqueConstraint("channel", "address"),
        Index("ix_channelidentity_citizen_id_channel", "citizen_id", "channel"),
    )
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    address: str = Field(max_length=128)
    citizen_id: int = Field(foreign_key="citizen.id")
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    # When this address proved the citizen's phone (an SMS code); a channel may let the proof lapse.
    phone_proved_at: datetime | None = None


class WebPushSubscription(SQLModel, table=True):
    """A browser's Web Push subscription, made from the web chat page (RFC 8030): the push service's
    endpoint for it and the keys its notifications are encrypted for (RFC 8291). The endpoint is a
    bearer capability: never logged, never shown. A push service's 404/410 sets gone_at for good."""

    id: int | None = Field(default=None, primary_key=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    endpoint: str = Field(unique=True, max_length=1024)
    p256dh: str = Field(max_length=128)  # the browser's P-256 public key, base64url
    auth: str = Field(max_length=64)  # the 16-byte auth secret, base64url
    created_at: datetime = Field(default_factory=utcnow)
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    gone_at: datetime | None = None


class Conversation(SQLModel, table=True):
    """One thread with the assistant; its id is the Rasa sender id."""

    id: str = Field(primary_key=True, max_length=40)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    identity_id: int = Field(foreign_key="channelidentity.id", index=True)
    channel: str = Field(max_length=32)
    started_at: datetime = Field(default_factory=utcnow)
    last_active_at: datetime = Field(default_factory=utcnow)


class Message(SQLModel, table=True):
    """Every message in and out. Inbound status: received → answered | bot_failed.
    Outbound status: queued → sent → delivered | undelivered | failed; web chat replies are sent in
    the request itself. An outbound external_id is the provider's id (Twilio SID, WeChat msgid)."""

    __table_args__ = (UniqueConstraint("channel", "direction", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: str = Field(foreign_key="conversation.id", index=True)
    direction: str = Field(max_length=3)  # "in" | "out"
    channel: str = Field(max_length=32)
    external_id: str | None = Field(default=None, max_length=128)
    text: str = ""
    buttons: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    status: str = Field(default="received", max_length=16, index=True)
    error: str | None = Field(default=None, max_length=255)
    in_reply_to: int | None = Field(default=None, foreign_key="message.id", index=True)
    segments: int | None = None  # SMS segments billed for this outbound message
    attempts: int = 0  # provider sends tried
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime | None = None


class UnansweredQuestion(SQLModel, table=True):
    """A citizen's question the assistant could not serve (declined, not understood, or only offered
    "did you mean"), kept for staff to review: the text with numbers masked, never the sender. Staff
    assign it to a service (its intent) or to out_of_scope; assignments export as training examples."""

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="message.id", unique=True)
    channel: str = Field(max_length=32)
    text: str = Field(max_length=1000)
    outcome: str = Field(max_length=16, index=True)  # declined | not_understood | suggested
    created_at: datetime = Field(default_factory=utcnow, index=True)
    assigned_to: str | None = Field(default=None, max_length=64, index=True)  # a service's intent, or out_of_scope
    assigned_by: int | None = Field(default=None, foreign_key="staffuser.id")
    assigned_at: datetime | None = None


# --- staff, broadcasts and school notices ---------------------------------------------------------


class StaffUser(SQLModel, table=True):
    """City or school staff. Roles: admin, broadcaster, approver, school (bound to one school), viewer, agent
    (answers citizens handed to a person)."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, max_length=64)
    display_name: str = Field(max_length=64)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)
    school_id: str | None = Field(default=None, foreign_key="school.id")
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime | None = None  # an agent's last sign of life in the inbox: who is online


class StaffSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored."""

    token_hash: str = Field(primary_key=True, max_length=64)
    staff_id: int = Field(foreign_key="staffuser.id", index=True)
    csrf_token: str = Field(max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class AuditLog(SQLModel, table=True):
    """Every staff action: who, what, on what, when, from where."""

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int | None = Field(default=None, foreign_key="staffuser.id", index=True)
    action: str = Field(max_length=64, index=True)
    target: str | None = Field(default=None, max_length=128)
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    ip: str | None = Field(default=None, max_length=64)
    at: datetime = Field(default_factory=utcnow, index=True)


class School(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64)
    district_id: str = Field(foreign_key="district.id")


class SchoolClass(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)
    school_id: str = Field(foreign_key="school.id", index=True)
    grade: int
    name: str = Field(max_length=32)  # 三年级2班


class Student(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=32)  # 学号
    name: str = Field(max_length=32)
    class_id: str = Field(foreign_key="schoolclass.id", index=True)


class Guardian(SQLModel, table=True):
    """A parent reachable for a student. The school records the phone; binding by SMS or WeChat
    ("绑定 学号 姓名") verifies it and lets the parent choose a channel."""

    __table_args__ = (UniqueConstraint("student_id", "citizen_id"),)
    id: int | None = Field(default=None, primary_key=True)
    student_id: str = Field(foreign_key="student.id", index=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    relation: str = Field(default="家长", max_length=16)
    verified: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class Broadcast(SQLModel, table=True):
    """A message to many: an emergency warning, a public notice, or a school notice.
    Status: draft → pending_approval (emergency) → scheduled → sending → completed | cancelled."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # emergency | notice | school
    title: str = Field(max_length=64)
    body: str
    audience: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    school_id: str | None = Field(default=None, foreign_key="school.id", index=True)
    urgent: bool = False  # a school notice that may override quiet hours
    status: str = Field(default="draft", max_length=20, index=True)
    idempotency_key: str | None = Field(default=None, unique=True, max_length=64)
    created_by: int = Field(foreign_key="staffuser.id")
    approved_by: int | None = Field(default=None, foreign_key="staffuser.id")
    created_at: datetime = Field(default_factory=utcnow)
    scheduled_at: datetime | None = None  # not before this time (and outside quiet hours unless emergency)
    approved_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancelled_at: datetime | None = None
    fanout_cursor: int = 0  # the last citizen id turned into a recipient row
    enqueued_upto: int = 0  # the last recipient id handed to the dispatcher
    recipient_total: int = 0


class BroadcastRecipient(SQLModel, table=True):
    """One citizen of a broadcast's audience: what happened to their message."""

    __table_args__ = (UniqueConstraint("broadcast_id", "citizen_id"),)
    id: int | None = Field(default=None, primary_key=True)
    broadcast_id: int = Field(foreign_key="broadcast.id", index=True)
    citizen_id: int = Field(foreign_key="citizen.id")
    student_id: str | None = Field(default=None, max_length=32)
    channel: str = Field(max_length=16)
    address: str = Field(max_length=128)
    status: str = Field(default="queued", max_length=16, index=True)  # queued → sent → delivered | failed
    provider_id: str | None = Field(default=None, max_length=64, index=True)
    error: str | None = Field(default=None, max_length=255)
    attempts: int = 0
    acked_at: datetime | None = None
    reminded_at: datetime | None = None
    updated_at: datetime | None = None


# --- a person when the bot is not enough ----------------------------------------------------------


class Handoff(SQLModel, table=True):
    """A conversation handed to a person (a ticket). Status: waiting → claimed → closed; a transfer to
    a team puts it back to waiting. While it is open the bot is paused for this address: the citizen's
    messages are recorded in the conversation's log and shown to the agent. `number` is what the
    citizen can quote. After closing, `awaiting_rating` lets the citizen's next "1"–"5" rate it."""

    __table_args__ = (Index("ix_handoff_channel_address", "channel", "address"),)
    id: int | None = Field(default=None, primary_key=True)
    number: str | None = Field(default=None, unique=True, max_length=20)
    conversation_id: str = Field(foreign_key="conversation.id", index=True)
    citizen_id: int = Field(foreign_key="citizen.id", index=True)
    channel: str = Field(max_length=32)
    address: str = Field(max_length=128)
    status: str = Field(default="waiting", max_length=16, index=True)
    reason: str = Field(default="asked", max_length=16)  # asked | misunderstood | emergency
    team: str = Field(default="general", max_length=32)  # a catalogue family id, or "general"
    agent_id: int | None = Field(default=None, foreign_key="staffuser.id", index=True)
    opened_at: datetime = Field(default_factory=utcnow)
    claimed_at: datetime | None = None
    closed_at: datetime | None = None
    last_citizen_at: datetime = Field(default_factory=utcnow)
    category: str | None = Field(default=None, max_length=32)
    resolution: str | None = Field(default=None, max_length=500)
    rating: int | None = None
    awaiting_rating: bool = False


class HandoffEntry(SQLModel, table=True):
    """What staff did on a handoff, beside the conversation's own messages: claim, reply (naming the
    message it sent), internal note (never shown to the citizen), transfer, close."""

    id: int | None = Field(default=None, primary_key=True)
    handoff_id: int = Field(foreign_key="handoff.id", index=True)
    staff_id: int | None = Field(default=None, foreign_key="staffuser.id")
    kind: str = Field(max_length=16)  # claim | reply | note | transfer | close
    text: str = ""
    message_id: int | None = Field(default=None, foreign_key="message.id")
    at: datetime = Field(default_factory=utcnow)
