"""The staff JSON API under /api/staff/ and the console pages under /staff/.

Every endpoint is declared once in StaffApi.endpoints (method, path, roles, body/query/response
models). routes() wraps each handler in the same guard — session, CSRF, role, validation, errors as
JSON — and the OpenAPI document is generated from the same list. Broadcast work is done only through
gateway.broadcast.service (the engine); this module adds access rules and the audit trail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.broadcast import service as engine
from gateway.config import Settings
from gateway.db.engine import saved_id
from gateway.db.models import (
    Broadcast,
    Community,
    District,
    School,
    SchoolClass,
    StaffSession,
    StaffUser,
    utcnow,
)
from gateway.logs import mask
from gateway.staff import accounts, audit, charts, dashboard, unanswered
from gateway.staff import schemas as s
from gateway.staff.auth import (
    authenticate,
    check_csrf,
    check_role,
    check_school,
    clear_cookie,
    client_address,
    find_session,
    forget_success,
    open_session,
    secure_request,
    set_cookie,
    throttle_address,
    throttle_login,
)
from gateway.staff.errors import ApiError, forbidden, invalid, json_response, not_found
from gateway.staff.openapi import Endpoint, build_document
from gateway.staff.passwords import hash_password_async, needs_rehash, verify_password_async
from gateway.state import StateStore
from intents.runtime import city_tz
from intents.services import catalogue

MAX_ID = 2**63 - 1  # the largest key SQLite and PostgreSQL (bigint) hold

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
PREFIX = "/api/staff"

ALL = frozenset(s.ROLES)
ADMIN = frozenset({"admin"})
CITY_READERS = frozenset({"admin", "broadcaster", "approver", "viewer"})
SENDERS = frozenset({"admin", "broadcaster"})
APPROVERS = frozenset({"admin", "approver"})
SCHOOL = frozenset({"admin", "school"})
REVIEWERS = frozenset({"admin", "viewer"})  # who may read what citizens asked that went unanswered


@dataclass
class Ctx:
    """What a handler gets: the request, its database session, and who is asking."""

    request: web.Request
    db: AsyncSession
    ip: str | None
    session: StaffSession | None = None
    staff: StaffUser | None = None
    body: Any = None
    query: Any = None

    @property
    def me(self) -> StaffUser:
        assert self.staff is not None  # only called by handlers of protected endpoints
        return self.staff

    def id(self, name: str = "id") -> int:
        value = int(self.request.match_info[name])
        if value > MAX_ID:  # no row has it, and the database driver would overflow on it (a 500)
            raise not_found(f"没有编号为{value}的记录。")
        return value

    def record(self, action: str, target: str | None = None, **detail: Any) -> None:
        audit.record(
            self.db,
            action,
            staff_id=self.staff.id if self.staff else None,
            target=target,
            detail=detail or None,
            ip=self.ip,
        )


def out(model: type[BaseModel], status: int = 200, **fields: Any) -> web.Response:
    return json_response(model.model_validate(fields).model_dump(mode="json"), status)


def _broadcast(row: Broadcast) -> s.BroadcastOut:
    shown = s.BroadcastOut.model_validate(row, from_attributes=True)
    if shown.audience.get("type") == "list":
        # Everyone who may read broadcasts sees them: an uploaded list's numbers are shown masked.
        shown.audience = {**shown.audience, "phones": [mask(p) for p in shown.audience.get("phones", [])]}
    return shown


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a <input type="datetime-local"> value: city time
        value = value.replace(tzinfo=city_tz())
    return value.astimezone(UTC)


async def _json_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    if request.content_type != "application/json":
        raise ApiError(415, "content_type", "请求体须为 JSON（Content-Type: application/json）。")
    raw = await request.read()  # past client_max_size this raises 413, answered as JSON by the app
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "json", "请求体不是有效的 JSON。") from None
    if not isinstance(data, dict):
        raise ApiError(400, "json", "请求体应为 JSON 对象。")
    try:  # JSON allows lone surrogates ("\ud800"); no database can store them
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ApiError(400, "json", "请求体含有无效字符。") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc) from None


async def _text_body(request: web.Request, types: tuple[str, ...]) -> str:
    if request.content_type not in types:
        raise ApiError(415, "content_type", f"请上传文本文件（Content-Type: {' 或 '.join(types)}）。")
    raw = await request.read()
    # Spreadsheets saved on Chinese Windows are GB18030, elsewhere UTF-8 (often with a BOM).
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ApiError(400, "encoding", "无法识别文件编码，请另存为 UTF-8 编码的文本或 CSV。")


def _query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise invalid(exc, "query") from None


class StaffApi:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        more: Sequence[Endpoint] = (),
    ) -> None:
        """`more`: endpoints declared elsewhere (the agents' inbox, gateway/handoff/api.py), guarded
        and documented like these."""
        self.settings, self.sessions, self.state = settings, sessions, state
        self.proxies = settings.forwarded_proxies
        self.endpoints = [*self._endpoints(), *more]
        self.document = build_document(self.endpoints)
        self._topics: list[dict[str, str]] | None = None

    def _endpoints(self) -> list[Endpoint]:
        P, E = PREFIX, Endpoint
        b = rf"{P}/broadcasts/{{id:\d+}}"
        n = rf"{P}/notices/{{id:\d+}}"
        return [
            E("POST", f"{P}/login", self.login, "登录", None, body=s.LoginIn, response=s.LoginOut),
            E("POST", f"{P}/logout", self.logout, "退出登录", ALL, status=204),
            E("GET", f"{P}/me", self.me, "当前账号与 CSRF 令牌", ALL, response=s.MeOut),
            E("GET", f"{P}/openapi.json", self.openapi, "本接口的 OpenAPI 3.1 文档", None),
            E("GET", f"{P}/users", self.users, "账号列表", ADMIN, response=s.UsersOut),
            E("POST", f"{P}/users", self.add_user, "新建账号", ADMIN, body=s.UserIn, response=s.UserOut, status=201),
            E("POST", rf"{P}/users/{{id:\d+}}/disable", self.disable_user, "停用账号", ADMIN, response=s.UserOut),
            E("GET", f"{P}/audit", self.audit, "审计日志（新的在前）", ADMIN, query=s.AuditQuery, response=s.AuditOut),
            E("GET", f"{P}/areas", self.areas, "区、社区与订阅主题", ALL, response=s.AreasOut),
            E(
                "POST",
                f"{P}/broadcasts/preview",
                self.preview,
                "预览：人数、短信条数、费用",
                SENDERS,
                body=s.PreviewIn,
                response=s.PreviewOut,
            ),
            E(
                "POST",
                f"{P}/broadcasts/upload",
                self.upload,
                "上传手机号清单（每行一个或 CSV）",
                SENDERS,
                text_body=("text/plain", "text/csv"),
                response=s.UploadOut,
            ),
            E(
                "POST",
                f"{P}/broadcasts",
                self.create_broadcast,
                "新建广播（紧急广播需审批）；同一 idempotency_key 重复提交返回 200 与原广播",
                SENDERS,
                body=s.BroadcastIn,
                response=s.BroadcastEnvelope,
                status=201,
                also=(200,),
            ),
            E(
                "GET",
                f"{P}/broadcasts",
                self.broadcasts,
                "广播列表（不含学校通知）",
                CITY_READERS,
                query=s.BroadcastsQuery,
                response=s.BroadcastsOut,
            ),
            E("GET", b, self.broadcast, "广播详情与进度", CITY_READERS, response=s.BroadcastDetailOut),
            E(
                "GET",
                f"{b}/recipients",
                self.recipients,
                "接收人（手机号已打码）",
                CITY_READERS,
                query=s.RecipientsQuery,
                response=s.RecipientsOut,
            ),
            E("POST", f"{b}/approve", self.approve, "审批紧急广播", APPROVERS, response=s.BroadcastEnvelope),
            E(
                "POST",
                f"{b}/cancel",
                self.cancel,
                "取消广播（未发出的不再发送）",
                SENDERS,
                response=s.BroadcastEnvelope,
            ),
            E("POST", f"{b}/retry-failed", self.retry_failed, "重发失败的接收人", SENDERS, response=s.RetriedOut),
            E("GET", f"{P}/schools", self.schools, "学校（学校教职工只见本校）", SCHOOL, response=s.SchoolsOut),
            E("GET", f"{P}/schools/{{id}}/classes", self.classes, "本校班级", SCHOOL, response=s.ClassesOut),
            E(
                "POST",
                f"{P}/notices",
                self.create_notice,
                "新建学校通知；同一 idempotency_key 重复提交返回 200 与原通知",
                SCHOOL,
                body=s.NoticeIn,
                response=s.NoticeEnvelope,
                status=201,
                also=(200,),
            ),
            E("GET", f"{P}/notices", self.notices, "本校通知列表", SCHOOL, query=s.LimitQuery, response=s.NoticesOut),
            E(
                "GET",
                n,
                self.notice,
                "通知详情、进度与家长回执",
                SCHOOL,
                query=s.RecipientsQuery,
                response=s.NoticeDetailOut,
            ),
            E("POST", f"{n}/remind", self.remind, "提醒未确认的家长", SCHOOL, response=s.RemindedOut),
            E(
                "GET",
                f"{P}/dashboard",
                self.dashboard,
                "数据看板：按天按渠道的市民消息数、各渠道送达率",
                CITY_READERS,
                query=s.DashboardQuery,
                response=s.DashboardOut,
            ),
            E(
                "GET",
                rf"{P}/dashboard/{{figure:messages|delivery}}.svg",
                self.dashboard_chart,
                "数据看板的图（SVG，服务器绘制）：messages 每日消息、delivery 送达率",
                CITY_READERS,
                query=s.DashboardQuery,
                download="image/svg+xml",
            ),
            E(
                "GET",
                rf"{P}/dashboard/{{figure:messages|delivery}}.csv",
                self.dashboard_csv,
                "数据看板的表（CSV 下载）",
                CITY_READERS,
                query=s.DashboardQuery,
                download="text/csv",
            ),
            E(
                "GET",
                f"{P}/unanswered",
                self.unanswered,
                "助手没能解答的问题，按相似度分组（数字已打码）",
                REVIEWERS,
                query=s.UnansweredQuery,
                response=s.UnansweredOut,
            ),
            E(
                "POST",
                f"{P}/unanswered/assign",
                self.assign_unanswered,
                "把一组问题归入某项服务，或标为不属于服务范围",
                ADMIN,
                body=s.AssignIn,
                response=s.AssignOut,
            ),
            E(
                "GET",
                f"{P}/unanswered/export",
                self.export_unanswered,
                "下载已归类的问题：服务目录格式的候选训练样例（YAML）",
                ADMIN,
                download=unanswered.MEDIA_TYPE,
            ),
        ]

    def routes(self) -> list[web.AbstractRouteDef]:
        defs: list[web.AbstractRouteDef] = [web.route(e.method, e.path, self._guard(e)) for e in self.endpoints]
        defs += [web.get("/staff", self.console_redirect), web.get("/staff/", self.console)]
        if STATIC.is_dir():
            defs.append(web.static("/staff/static", STATIC))
        # Last: anything else under the API prefix gets a JSON 404/405, not aiohttp's English text.
        defs.append(web.route("*", f"{PREFIX}/{{tail:.*}}", self.unknown))
        return defs

    def _guard(self, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                async with self.sessions() as db:
                    ctx = Ctx(request, db, client_address(request, self.proxies))
                    if endpoint.roles is not None:
                        ctx.session, ctx.staff = await authenticate(db, request)
                        if endpoint.csrf:
                            check_csrf(request, ctx.session)
                        check_role(ctx.staff, endpoint.roles)
                    if endpoint.query is not None:
                        ctx.query = _query(request, endpoint.query)
                    if endpoint.body is not None:
                        ctx.body = await _json_body(request, endpoint.body)
                    elif endpoint.text_body:
                        ctx.body = await _text_body(request, endpoint.text_body)
                    response = await endpoint.handler(ctx)
                    await db.commit()
            except ApiError as exc:
                response = exc.response()
            except engine.BroadcastError as exc:
                response = json_response({"error": exc.message, "code": exc.code}, exc.status)
            except web.HTTPException:
                raise  # 413 and friends: the app's middleware answers them
            except Exception:
                log.exception("staff API %s %s failed", request.method, request.path)
                response = json_response({"error": "服务器内部错误，请稍后再试。", "code": "internal"}, 500)
            # Staff data must not sit in shared caches or the browser's back/forward cache.
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            return response

        handle.__name__ = endpoint.operation_id
        return handle

    # --- sign-in ------------------------------------------------------------------------------

    async def login(self, ctx: Ctx) -> web.Response:
        body: s.LoginIn = ctx.body
        username = body.username.strip()
        db = ctx.db
        try:
            attempt = await throttle_address(self.state, ctx.ip)
        except ApiError:
            ctx.record("login_failed", username, reason="address_throttled")
            await db.commit()
            raise
        try:
            await throttle_login(self.state, username, ctx.ip)
        except ApiError:
            ctx.record("login_failed", username, reason="throttled")
            await db.commit()
            raise
        user = (await db.exec(select(StaffUser).where(StaffUser.username == username))).first()
        # Hand the connection back while the hash waits its turn: a burst of sign-ins queued for
        # argon2 must not hold the pool that citizens' turns need.
        await db.commit()
        if not await verify_password_async(user.password_hash if user else None, body.password) or user is None:
            ctx.staff = user
            ctx.record("login_failed", username, reason="bad_credentials")
            await db.commit()
            raise ApiError(401, "login_failed", "用户名或密码错误。")
        ctx.staff = user
        if not user.active:
            ctx.record("login_failed", username, reason="disabled")
            await db.commit()
            raise ApiError(403, "disabled", "该账号已停用，请联系管理员。")
        if needs_rehash(user.password_hash):  # the hasher's parameters were raised since it was set
            user.password_hash = await hash_password_async(body.password)
            db.add(user)
        previous = await find_session(db, ctx.request)
        if previous is not None:  # a new sign-in never reuses the browser's old session
            await db.delete(previous[0])
        token, session = await open_session(db, user, ctx.ip)
        ctx.record("login", username)
        await forget_success(self.state, ctx.ip, attempt)
        staff = s.StaffOut.model_validate(user, from_attributes=True)
        response = out(s.LoginOut, staff=staff, csrf_token=session.csrf_token)
        set_cookie(response, token, secure_request(ctx.request, self.settings.public_base_url))
        return response

    async def logout(self, ctx: Ctx) -> web.Response:
        assert ctx.session is not None
        await ctx.db.delete(ctx.session)
        ctx.record("logout", ctx.me.username)
        response = web.Response(status=204)
        clear_cookie(response, secure_request(ctx.request, self.settings.public_base_url))
        return response

    async def me(self, ctx: Ctx) -> web.Response:
        assert ctx.session is not None
        staff = ctx.me
        return out(
            s.MeOut,
            id=staff.id,
            username=staff.username,
            display_name=staff.display_name,
            role=staff.role,
            school_id=staff.school_id,
            csrf_token=ctx.session.csrf_token,
        )

    async def openapi(self, ctx: Ctx) -> web.Response:
        return json_response(self.document)

    # --- accounts and audit -------------------------------------------------------------------

    async def users(self, ctx: Ctx) -> web.Response:
        return out(
            s.UsersOut,
            users=[s.StaffOut.model_validate(u, from_attributes=True) for u in await accounts.list_staff(ctx.db)],
        )

    async def add_user(self, ctx: Ctx) -> web.Response:
        body: s.UserIn = ctx.body
        user = await accounts.create_staff(
            ctx.db,
            username=body.username,
            password=body.password,
            role=body.role,
            display_name=body.display_name,
            school_id=body.school_id,
        )
        ctx.record("user_create", f"staff:{user.id}", username=user.username, role=user.role, school_id=user.school_id)
        return out(s.UserOut, 201, user=s.StaffOut.model_validate(user, from_attributes=True))

    async def disable_user(self, ctx: Ctx) -> web.Response:
        user = await accounts.disable_staff(ctx.db, ctx.id(), ctx.me)
        ctx.record("user_disable", f"staff:{user.id}", username=user.username)
        return out(s.UserOut, user=s.StaffOut.model_validate(user, from_attributes=True))

    async def audit(self, ctx: Ctx) -> web.Response:
        q: s.AuditQuery = ctx.query
        return out(s.AuditOut, entries=await audit.recent(ctx.db, q.limit, q.offset))

    async def areas(self, ctx: Ctx) -> web.Response:
        districts = (await ctx.db.exec(select(District).order_by(col(District.id)))).all()
        communities = (await ctx.db.exec(select(Community).order_by(col(Community.id)))).all()
        by_district: dict[str, list[dict[str, str]]] = {d.id: [] for d in districts}
        for c in communities:
            by_district.setdefault(c.district_id, []).append({"id": c.id, "name": c.name})
        return out(
            s.AreasOut,
            districts=[{"id": d.id, "name": d.name, "communities": by_district[d.id]} for d in districts],
            topics=self.topics(),
        )

    def topics(self) -> list[dict[str, str]]:
        """Alert topics citizens can subscribe to: the catalogue's subscription services."""
        if self._topics is None:
            from intents.services import catalogue

            found: dict[str, str] = {}
            for service in catalogue().services:
                params = service.params
                if service.handler == "subscription" and params.get("action", "subscribe") == "subscribe":
                    found.setdefault(params["topic"], params.get("topic_name", service.name))
            self._topics = [{"id": k, "name": v} for k, v in found.items()]
        return self._topics

    # --- broadcasts ---------------------------------------------------------------------------

    async def _city_broadcast(self, ctx: Ctx) -> Broadcast:
        broadcast = await engine.get(ctx.db, ctx.id())
        # School notices belong to their school: the city endpoints do not show them (admin aside).
        if broadcast.kind == "school" and ctx.me.role != "admin":
            raise not_found(f"没有编号为{broadcast.id}的广播。")
        return broadcast

    async def preview(self, ctx: Ctx) -> web.Response:
        body: s.PreviewIn = ctx.body
        result = await engine.preview(
            ctx.db, self.settings, body.kind, body.body, body.audience.model_dump(), title=body.title
        )
        return json_response(result)

    async def upload(self, ctx: Ctx) -> web.Response:
        valid, errors = engine.parse_phone_list(ctx.body)
        return json_response({"valid": valid, "errors": errors})

    async def create_broadcast(self, ctx: Ctx) -> web.Response:
        body: s.BroadcastIn = ctx.body
        broadcast, created = await engine.create(
            ctx.db,
            self.settings,
            ctx.me,
            kind=body.kind,
            title=body.title,
            body=body.body,
            audience=body.audience.model_dump(),
            scheduled_at=_utc(body.scheduled_at),
            idempotency_key=body.idempotency_key,
        )
        if created:
            ctx.record("broadcast_create", f"broadcast:{broadcast.id}", kind=broadcast.kind, title=broadcast.title)
        return out(s.BroadcastEnvelope, 201 if created else 200, broadcast=_broadcast(broadcast))

    async def broadcasts(self, ctx: Ctx) -> web.Response:
        q: s.BroadcastsQuery = ctx.query
        kinds = q.kind or ("emergency", "notice")  # school notices have their own list
        rows = await engine.list_(ctx.db, ctx.me, kind=kinds, limit=q.limit)
        return out(s.BroadcastsOut, broadcasts=[_broadcast(b) for b in rows])

    async def broadcast(self, ctx: Ctx) -> web.Response:
        broadcast = await self._city_broadcast(ctx)
        progress = await engine.progress(ctx.db, saved_id(broadcast))
        ids = {broadcast.created_by, broadcast.approved_by} - {None}
        names = await ctx.db.exec(select(StaffUser.id, StaffUser.display_name).where(col(StaffUser.id).in_(ids)))
        staff = {str(staff_id): name for staff_id, name in names}
        return out(s.BroadcastDetailOut, broadcast=_broadcast(broadcast), progress=progress, staff=staff)

    async def recipients(self, ctx: Ctx) -> web.Response:
        q: s.RecipientsQuery = ctx.query
        broadcast = await self._city_broadcast(ctx)
        rows = await engine.recipients(ctx.db, saved_id(broadcast), status=q.status, offset=q.offset, limit=q.limit)
        return json_response({"recipients": rows, "offset": q.offset, "limit": q.limit})

    async def approve(self, ctx: Ctx) -> web.Response:
        broadcast = await self._city_broadcast(ctx)
        broadcast = await engine.approve(ctx.db, ctx.me, saved_id(broadcast))
        ctx.record("broadcast_approve", f"broadcast:{broadcast.id}", title=broadcast.title)
        return out(s.BroadcastEnvelope, broadcast=_broadcast(broadcast))

    async def cancel(self, ctx: Ctx) -> web.Response:
        broadcast = await self._city_broadcast(ctx)
        broadcast = await engine.cancel(ctx.db, ctx.me, saved_id(broadcast))
        ctx.record("broadcast_cancel", f"broadcast:{broadcast.id}", title=broadcast.title)
        return out(s.BroadcastEnvelope, broadcast=_broadcast(broadcast))

    async def retry_failed(self, ctx: Ctx) -> web.Response:
        broadcast = await self._city_broadcast(ctx)
        count = await engine.retry_failed(ctx.db, ctx.me, saved_id(broadcast))
        ctx.record("broadcast_retry", f"broadcast:{broadcast.id}", count=count)
        return out(s.RetriedOut, retried=count)

    # --- schools and notices ------------------------------------------------------------------

    async def _notice(self, ctx: Ctx) -> Broadcast:
        notice = await engine.get(ctx.db, ctx.id())
        if notice.kind != "school":
            raise not_found(f"没有编号为{notice.id}的学校通知。")
        check_school(ctx.me, notice.school_id)
        return notice

    async def schools(self, ctx: Ctx) -> web.Response:
        query = select(School.id, School.name).order_by(col(School.id))
        if ctx.me.role == "school":
            query = query.where(col(School.id) == ctx.me.school_id)
        rows = (await ctx.db.exec(query)).all()
        return out(s.SchoolsOut, schools=[{"id": school_id, "name": name} for school_id, name in rows])

    async def classes(self, ctx: Ctx) -> web.Response:
        school_id = ctx.request.match_info["id"]
        check_school(ctx.me, school_id)
        school = await ctx.db.get(School, school_id)
        if school is None:
            raise not_found(f"没有编号为“{school_id}”的学校。")
        rows = await ctx.db.exec(
            select(SchoolClass)
            .where(SchoolClass.school_id == school_id)
            .order_by(col(SchoolClass.grade), col(SchoolClass.id))
        )
        classes = [s.ClassOut.model_validate(c, from_attributes=True) for c in rows.all()]
        return out(s.ClassesOut, school={"id": school.id, "name": school.name}, classes=classes)

    async def create_notice(self, ctx: Ctx) -> web.Response:
        body: s.NoticeIn = ctx.body
        staff = ctx.me
        if staff.role == "school":
            if body.school_id not in (None, staff.school_id):
                raise forbidden("学校教职工只能给本校发通知。")
            school_id = staff.school_id
        elif body.school_id is None:
            raise ApiError(400, "invalid", "管理员发通知须指定学校（字段“school_id”）。", field="school_id")
        else:
            school_id = body.school_id
        notice, created = await engine.create(
            ctx.db,
            self.settings,
            staff,
            kind="school",
            title=body.title,
            body=body.body,
            audience=body.audience.model_dump(),
            scheduled_at=_utc(body.scheduled_at),
            idempotency_key=body.idempotency_key,
            school_id=school_id,
            urgent=body.urgent,
        )
        if created:
            ctx.record("notice_create", f"notice:{notice.id}", school_id=school_id, title=notice.title)
        return out(s.NoticeEnvelope, 201 if created else 200, notice=_broadcast(notice))

    async def notices(self, ctx: Ctx) -> web.Response:
        q: s.LimitQuery = ctx.query
        rows = await engine.list_(ctx.db, ctx.me, kind="school", limit=q.limit)
        return out(s.NoticesOut, notices=[_broadcast(b) for b in rows])

    async def notice(self, ctx: Ctx) -> web.Response:
        q: s.RecipientsQuery = ctx.query
        notice = await self._notice(ctx)
        progress = await engine.progress(ctx.db, saved_id(notice))
        rows = await engine.recipients(ctx.db, saved_id(notice), status=q.status, offset=q.offset, limit=q.limit)
        payload = {"notice": _broadcast(notice).model_dump(mode="json"), "progress": progress, "recipients": rows}
        return json_response(payload)

    async def remind(self, ctx: Ctx) -> web.Response:
        notice = await self._notice(ctx)
        count = await engine.remind(ctx.db, self.settings, ctx.me, saved_id(notice))
        ctx.record("notice_remind", f"notice:{notice.id}", count=count)
        return out(s.RemindedOut, reminded=count)

    # --- console pages and unknown paths ------------------------------------------------------

    # --- dashboard ---------------------------------------------------------------------------------

    def _span(self, ctx: Ctx) -> dashboard.Span:
        q: s.DashboardQuery = ctx.query
        # the wall clock, not the domain's (CITYGW_FIXED_NOW): messages are stamped with the real time
        within = dashboard.span(q.start, q.end, datetime.now(city_tz()).date())
        if isinstance(within, str):
            raise ApiError(400, "invalid", within)
        return within

    async def dashboard(self, ctx: Ctx) -> web.Response:
        within = self._span(ctx)
        daily = await dashboard.messages_by_day(ctx.db, within)
        delivery = await dashboard.delivery_by_channel(ctx.db, within)
        names = dashboard.CHANNEL_NAMES
        return out(
            s.DashboardOut,
            start=within.start,
            end=within.end,
            channels={c: names.get(c, c) for c in daily.channels},
            days=[
                {
                    "day": d,
                    "counts": {c: daily.counts.get((d, c), 0) for c in daily.channels},
                    "total": sum(daily.counts.get((d, c), 0) for c in daily.channels),
                }
                for d in daily.days
            ],
            delivery=[{**vars(d), "name": names.get(d.channel, d.channel), "rate": d.rate} for d in delivery],
        )

    async def dashboard_chart(self, ctx: Ctx) -> web.Response:
        within = self._span(ctx)
        names = dashboard.CHANNEL_NAMES
        period = f"{within.start:%m-%d}至{within.end:%m-%d}"
        if ctx.request.match_info["figure"] == "messages":
            daily = await dashboard.messages_by_day(ctx.db, within)
            svg = charts.daily_bars(f"每日市民消息（按渠道，{period}）", daily.days, daily.series(), names)
        else:
            rows = await dashboard.delivery_by_channel(ctx.db, within)
            svg = charts.rate_bars(f"各渠道送达率（{period}）", rows, names)
        return web.Response(text=svg, content_type="image/svg+xml", charset="utf-8")

    async def dashboard_csv(self, ctx: Ctx) -> web.Response:
        within = self._span(ctx)
        figure = ctx.request.match_info["figure"]
        names = dashboard.CHANNEL_NAMES
        if figure == "messages":
            text = dashboard.messages_csv(await dashboard.messages_by_day(ctx.db, within), names)
        else:
            text = dashboard.delivery_csv(await dashboard.delivery_by_channel(ctx.db, within), names)
        name = f"{figure}-{within.start:%Y%m%d}-{within.end:%Y%m%d}.csv"
        return web.Response(
            text=text,
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # --- unanswered questions ------------------------------------------------------------------

    async def unanswered(self, ctx: Ctx) -> web.Response:
        q: s.UnansweredQuery = ctx.query
        groups = await unanswered.listing(ctx.db, assigned=q.status == "assigned")
        families = {f.id: f.name for f in catalogue().families}
        services = {svc.intent: families.get(svc.family, "") for svc in catalogue().services}
        return out(
            s.UnansweredOut,
            groups=[
                {
                    "text": g.text,
                    "count": g.count,
                    "ids": g.ids,
                    "wordings": [{"text": t, "count": n} for t, n in g.texts.most_common(10)],
                    "outcomes": dict(g.outcomes),
                    "channels": dict(g.channels),
                    "assigned_to": dict(g.assigned),
                    "last_at": g.last_at,
                }
                for g in groups
            ],
            questions=sum(g.count for g in groups),
            targets=[
                {"id": intent, "name": name, "family": services.get(intent, "")}
                for intent, name in unanswered.targets().items()
            ],
        )

    async def assign_unanswered(self, ctx: Ctx) -> web.Response:
        body: s.AssignIn = ctx.body
        name = unanswered.targets().get(body.target)
        if name is None:
            raise ApiError(400, "unknown_service", f"服务目录里没有“{body.target}”：请从列表中选择一项服务。")
        changed = await unanswered.assign(ctx.db, body.ids, body.target, ctx.me.id or 0)
        if changed == 0:
            raise not_found("这些问题不存在。")
        ctx.record("unanswered_assign", f"service:{body.target}", questions=changed, service=name)
        return out(s.AssignOut, assigned=changed, target=body.target)

    async def export_unanswered(self, ctx: Ctx) -> web.Response:
        text, count = await unanswered.export(ctx.db)
        ctx.record("unanswered_export", None, examples=count)
        name = f"unanswered-examples-{utcnow():%Y%m%d}.yaml"
        return web.Response(
            text=text,
            content_type=unanswered.MEDIA_TYPE,
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def console_redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/staff/")

    async def console(self, request: web.Request) -> web.StreamResponse:
        index = STATIC / "index.html"
        if not index.is_file():
            raise web.HTTPNotFound(text="控制台页面尚未安装。")
        # The console must not be framed by another site (clickjacking on approve/cancel buttons).
        headers = {
            "Cache-Control": "no-cache",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
        }
        return web.FileResponse(index, headers=headers)

    async def unknown(self, request: web.Request) -> web.Response:
        here = request.match_info.route.resource  # the catch-all that matched: always set
        for resource in request.app.router.resources():
            if here is not None and resource.canonical == here.canonical:
                continue
            match, allowed = await resource.resolve(request)
            if match is None and allowed:
                return json_response(
                    {"error": f"此接口不支持 {request.method} 请求。", "code": "method_not_allowed"},
                    405,
                    {"Allow": ", ".join(sorted(allowed))},
                )
        return json_response({"error": "没有这个接口。", "code": "not_found"}, 404)


def staff_routes(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], state: StateStore, more: Sequence[Endpoint] = ()
) -> list[web.AbstractRouteDef]:
    """The staff API and console routes, for the app to add."""
    return StaffApi(settings, sessions, state, more).routes()
