"""The agents' inbox API models (request bodies, query strings, responses); the OpenAPI document is
generated from them like the rest of the staff API's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from gateway.staff.schemas import Query, Strict

Category = Literal["咨询", "求助", "投诉", "建议", "表扬", "其他"]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class HandoffsQuery(Query):
    view: Literal["waiting", "mine", "open", "closed"] = Field(
        default="waiting", description="waiting 排队中；mine 我接待中；open 全部未结束；closed 已结束"
    )
    limit: int = Field(default=50, ge=1, le=200)


class ReplyIn(Strict):
    text: Text


class NoteIn(Strict):
    text: Text


class TransferIn(Strict):
    team: str | None = Field(default=None, max_length=32, description="转给一个组（服务大类编号，或 general）")
    agent_id: int | None = Field(default=None, ge=1, description="或转给一位同事（账号编号）")


class CloseIn(Strict):
    category: Category
    resolution: Text


class HandoffOut(BaseModel):
    id: int
    number: str
    status: str
    reason: str
    team: str
    channel: str
    channel_label: str
    contact: str = Field(description="已打码的联系方式，查看原文须调用 reveal（记入审计）")
    agent_id: int | None
    agent_name: str | None
    opened_at: datetime
    claimed_at: datetime | None
    closed_at: datetime | None
    last_citizen_at: datetime
    waiting_s: int = Field(description="排队中：等了多少秒；其他状态：0")
    sla: Literal["green", "amber", "red", "none"]
    category: str | None
    resolution: str | None
    rating: int | None


class HandoffsOut(BaseModel):
    handoffs: list[HandoffOut]


class TranscriptEntry(BaseModel):
    kind: Literal["in", "out", "agent", "note", "claim", "transfer", "close"]
    text: str
    at: datetime
    staff_name: str | None = None


class HandoffDetailOut(BaseModel):
    handoff: HandoffOut
    transcript: list[TranscriptEntry]


class HandoffEnvelope(BaseModel):
    handoff: HandoffOut


class ContactOut(BaseModel):
    contact: str


class TeamOut(BaseModel):
    id: str
    name: str


class AgentOut(BaseModel):
    id: int
    display_name: str
    online: bool


class InboxStatsOut(BaseModel):
    waiting: int
    claimed: int
    longest_wait_s: int
    agents_online: int
    teams: list[TeamOut]
    agents: list[AgentOut]
