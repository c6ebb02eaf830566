"""Pydantic models of the staff API: request bodies and query strings (validated by the handlers) and
responses (used to serialise). The OpenAPI document is generated from these same classes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.broadcast.audience import MAX_GRADES, MAX_IDS

ROLES = ("admin", "broadcaster", "approver", "school", "viewer", "agent")
Role = Literal["admin", "broadcaster", "approver", "school", "viewer", "agent"]
# "failed" includes undelivered; acked/unacked filter school notices by the parents' acknowledgement.
RecipientStatus = Literal["queued", "sent", "delivered", "undelivered", "failed", "skipped", "acked", "unacked"]

Id = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=500)]
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$"),
    Field(description="同一键重复提交只创建一次"),
]
ScheduledAt = Annotated[
    datetime | None, Field(description="不早于此时发送；不带时区的时间按本市时间（Asia/Shanghai）理解")
]


class Strict(BaseModel):
    """Request models refuse unknown fields: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


# --- audiences ----------------------------------------------------------------------------------


class AllAudience(Strict):
    type: Literal["all"]


class DistrictsAudience(Strict):
    type: Literal["districts"]
    ids: list[Id] = Field(min_length=1, max_length=MAX_IDS["districts"])


class CommunitiesAudience(Strict):
    type: Literal["communities"]
    ids: list[Id] = Field(min_length=1, max_length=MAX_IDS["communities"])


class TopicsAudience(Strict):
    type: Literal["topics"]
    ids: list[Id] = Field(min_length=1, max_length=MAX_IDS["topics"])


class ListAudience(Strict):
    type: Literal["list"]
    # no max_length here: broadcast/audience.py answers an over-long list with its own code and count
    phones: list[Annotated[str, StringConstraints(min_length=1, max_length=32)]] = Field(min_length=1)


class SchoolAudience(Strict):
    type: Literal["school"]


class GradeAudience(Strict):
    type: Literal["grade"]
    grades: list[Annotated[int, Field(ge=1, le=MAX_GRADES)]] = Field(min_length=1, max_length=MAX_GRADES)


class ClassesAudience(Strict):
    type: Literal["classes"]
    ids: list[Id] = Field(min_length=1, max_length=MAX_IDS["classes"])


CityAudience = Annotated[
    AllAudience | DistrictsAudience | CommunitiesAudience | TopicsAudience | ListAudience,
    Field(discriminator="type"),
]
NoticeAudience = Annotated[SchoolAudience | GradeAudience | ClassesAudience, Field(discriminator="type")]


# --- request bodies -------------------------------------------------------------------------------


class LoginIn(Strict):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class UserIn(Strict):
    username: Annotated[str, StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    display_name: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    password: Annotated[str, StringConstraints(min_length=10, max_length=256)]
    role: Role
    school_id: Id | None = Field(default=None, description="role 为 school 时必填")


class PreviewIn(Strict):
    kind: Literal["emergency", "notice"]
    title: Title | None = Field(default=None, description="给出时按实际发送的短信（含标题）计算条数")
    body: Body
    audience: CityAudience


class BroadcastIn(Strict):
    kind: Literal["emergency", "notice"]
    title: Title
    body: Body
    audience: CityAudience
    scheduled_at: ScheduledAt = None
    idempotency_key: IdempotencyKey


class NoticeIn(Strict):
    title: Title
    body: Body
    audience: NoticeAudience
    urgent: bool = Field(default=False, description="紧急通知可在免打扰时段发送")
    scheduled_at: ScheduledAt = None
    idempotency_key: IdempotencyKey
    school_id: Id | None = Field(default=None, description="学校教职工可省略（即本校）；管理员必填")


# --- query strings --------------------------------------------------------------------------------


class Query(BaseModel):
    """Query strings ignore unknown parameters: browsers and proxies add cache-busters."""

    model_config = ConfigDict(extra="ignore")


class LimitQuery(Query):
    limit: int = Field(default=50, ge=1, le=200)


class AuditQuery(Query):
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class BroadcastsQuery(Query):
    kind: Literal["emergency", "notice"] | None = None
    limit: int = Field(default=50, ge=1, le=200)


class RecipientsQuery(Query):
    status: RecipientStatus | None = None
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=50, ge=1, le=500)


# --- responses ------------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str
    reason: str


class ErrorOut(BaseModel):
    error: str = Field(description="中文说明原因")
    code: str
    field: str | None = Field(default=None, description="code 为 invalid 时：第一个有问题的字段")
    fields: list[FieldProblem] | None = Field(default=None, description="code 为 invalid 时：所有有问题的字段")


class StaffOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    display_name: str
    role: Role
    school_id: str | None
    active: bool
    created_at: datetime


class LoginOut(BaseModel):
    staff: StaffOut
    csrf_token: str


class MeOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    school_id: str | None
    csrf_token: str


class UserOut(BaseModel):
    user: StaffOut


class UsersOut(BaseModel):
    users: list[StaffOut]


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    staff_id: int | None
    username: str | None
    action: str
    target: str | None
    detail: dict[str, Any] | None
    ip: str | None


class AuditOut(BaseModel):
    entries: list[AuditEntryOut]


class NamedOut(BaseModel):
    id: str
    name: str


class DistrictOut(NamedOut):
    communities: list[NamedOut]


class AreasOut(BaseModel):
    districts: list[DistrictOut]
    topics: list[NamedOut]


class CountsOut(BaseModel):
    sms: int
    wechat: int
    webpush: int
    total: int


class ExcludedOut(BaseModel):
    opted_out: int
    no_channel: int


class PreviewOut(BaseModel):
    recipients: CountsOut
    excluded: ExcludedOut
    segments: int
    cost_yuan: float
    quiet_hours: bool
    sms_text: str


class UploadErrorOut(BaseModel):
    line: int
    value: str
    reason: str


class UploadOut(BaseModel):
    valid: list[str]
    errors: list[UploadErrorOut]


class BroadcastOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: Literal["emergency", "notice", "school"]
    title: str
    body: str
    audience: dict[str, Any]
    school_id: str | None
    urgent: bool
    status: str
    idempotency_key: str | None
    created_by: int
    approved_by: int | None
    created_at: datetime
    scheduled_at: datetime | None
    approved_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    cancelled_at: datetime | None
    recipient_total: int


class ProgressOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    total: int = 0
    queued: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    skipped: int = 0
    acked: int = 0


class RecipientOut(BaseModel):
    """As the engine lists it: the address is masked."""

    model_config = ConfigDict(extra="allow")
    id: int | None = None
    channel: str | None = None
    address: str | None = Field(default=None, description="已打码")
    status: str | None = None
    student_id: str | None = None
    student_name: str | None = None
    error: str | None = None
    acked_at: datetime | None = None


class BroadcastEnvelope(BaseModel):
    broadcast: BroadcastOut


class BroadcastsOut(BaseModel):
    broadcasts: list[BroadcastOut]


class BroadcastDetailOut(BaseModel):
    broadcast: BroadcastOut
    progress: ProgressOut
    staff: dict[str, str] = {}  # display names of the creator and approver, by staff id


class RecipientsOut(BaseModel):
    recipients: list[RecipientOut]
    offset: int
    limit: int


class RetriedOut(BaseModel):
    retried: int


class ClassOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    grade: int
    name: str


class ClassesOut(BaseModel):
    school: NamedOut
    classes: list[ClassOut]


class SchoolsOut(BaseModel):
    schools: list[NamedOut]


class NoticeEnvelope(BaseModel):
    notice: BroadcastOut


class NoticesOut(BaseModel):
    notices: list[BroadcastOut]


class NoticeDetailOut(BaseModel):
    notice: BroadcastOut
    progress: ProgressOut
    recipients: list[RecipientOut]


class RemindedOut(BaseModel):
    reminded: int


# --- unanswered questions -------------------------------------------------------------------------


class UnansweredQuery(Query):
    status: Literal["open", "assigned"] = Field(default="open", description="open：待归类；assigned：已归类")


class WordingOut(BaseModel):
    text: str = Field(description="市民原话（数字已打码）")
    count: int


class UnansweredGroupOut(BaseModel):
    text: str = Field(description="这一组里问得最多的说法")
    count: int
    ids: list[int] = Field(description="这一组的问题编号：归类时原样提交")
    wordings: list[WordingOut]
    outcomes: dict[str, int] = Field(description="declined 婉拒 / not_understood 没听懂 / suggested 只给了猜测")
    channels: dict[str, int]
    assigned_to: dict[str, int] = Field(description="已归入的服务（意图名）及题数")
    last_at: datetime | None


class TargetOut(BaseModel):
    id: str = Field(description="服务的意图名，或 out_of_scope")
    name: str
    family: str


class UnansweredOut(BaseModel):
    groups: list[UnansweredGroupOut]
    questions: int
    targets: list[TargetOut]


class AssignIn(Strict):
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(min_length=1, max_length=2000)
    target: Id = Field(description="服务的意图名（见 targets），或 out_of_scope 表示不属于服务范围")


class AssignOut(BaseModel):
    assigned: int
    target: str


# --- dashboard --------------------------------------------------------------------------------------


class DashboardQuery(Query):
    start: date | None = Field(default=None, description="开始日期（本市日期，含当天）；默认结束日期前13天")
    end: date | None = Field(default=None, description="结束日期（含当天）；默认今天")


class DayOut(BaseModel):
    day: date
    counts: dict[str, int] = Field(description="渠道 → 市民发来的消息数")
    total: int


class DeliveryOut(BaseModel):
    channel: str
    name: str
    sent: int = Field(description="已发出（含已送达、未送达、失败与尚无回报的）")
    delivered: int
    failed: int
    rate: float | None = Field(description="已送达 ÷ 已发出；没有发出时为空")


class DashboardOut(BaseModel):
    start: date
    end: date
    channels: dict[str, str] = Field(description="渠道 → 名称")
    days: list[DayOut]
    delivery: list[DeliveryOut]
