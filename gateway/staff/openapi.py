"""The staff API's route table type and its OpenAPI 3.1 document.

api.py declares every endpoint once as an Endpoint (method, path, roles, body, query and response
models); the router is built from that list and so is this document, so the two cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from gateway.staff.auth import COOKIE, CSRF_HEADER
from gateway.staff.schemas import ErrorOut

Handler = Callable[[Any], Awaitable[Any]]
_PARAM = re.compile(r"\{(\w+)(?::([^{}]+))?\}")

ERRORS = {
    "400": "请求体或参数无效（code: invalid / json / encoding，或广播引擎给出的 code），error 说明原因与字段",
    "401": "未登录或登录已过期（code: unauthenticated）",
    "403": "缺少安全令牌（code: csrf）或角色无权操作（code: forbidden）",
    "404": "对象不存在（code: not_found）",
    "409": "状态冲突，例如重复审批、自己审批自己，或工单已被别人接走（code 说明是哪一种）",
    "413": "请求体超过64KB（code: too_large）",
    "415": "请求体类型不对（code: content_type）",
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # aiohttp syntax: {id:\d+}
    handler: Handler
    summary: str
    roles: frozenset[str] | None  # None: public (no session needed)
    body: type[BaseModel] | None = None  # a JSON body validated by this model
    text_body: tuple[str, ...] = ()  # or a text body of one of these content types
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    also: tuple[int, ...] = ()  # other success statuses (200 for a repeated idempotency key)
    download: str | None = None  # the media type of a file the endpoint answers with, instead of JSON

    @property
    def csrf(self) -> bool:
        return self.roles is not None and self.method not in ("GET", "HEAD")

    @property
    def openapi_path(self) -> str:
        return _PARAM.sub(lambda m: "{" + m.group(1) + "}", self.path)

    @property
    def operation_id(self) -> str:
        words = re.sub(r"\{(\w+)(?::[^{}]+)?\}", r"by_\1", self.path.removeprefix("/api/staff/"))
        return self.method.lower() + "_" + re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_")


def _schemas(
    endpoints: Sequence[Endpoint],
) -> tuple[dict[tuple[type[BaseModel], JsonSchemaMode], dict], dict[str, Any]]:
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorOut, "serialization")]
    for e in endpoints:
        if e.body is not None:
            models.append((e.body, "validation"))
        if e.response is not None:
            models.append((e.response, "serialization"))
    unique = list(dict.fromkeys(models))
    refs, top = models_json_schema(unique, ref_template="#/components/schemas/{model}")
    return {model: refs[model] for model in unique}, top.get("$defs", {})


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    params = []
    for name, pattern in _PARAM.findall(endpoint.path):
        schema: dict[str, Any] = {"type": "integer"} if pattern == r"\d+" else {"type": "string"}
        if pattern and re.fullmatch(r"\w+(\|\w+)+", pattern):  # one of a few names: {figure:messages|delivery}
            schema["enum"] = pattern.split("|")
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    return params


def _operation(endpoint: Endpoint, refs: dict[tuple[type[BaseModel], JsonSchemaMode], dict]) -> dict[str, Any]:
    error = {"application/json": {"schema": refs[(ErrorOut, "serialization")]}}
    op: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.path.removeprefix("/api/staff/").split("/")[0].split(".")[0]],
    }
    if endpoint.roles is None:
        op["security"] = []
    else:
        op["security"] = [{"staffSession": [], "csrfToken": []}] if endpoint.csrf else [{"staffSession": []}]
        op["x-roles"] = sorted(endpoint.roles)
    params = _parameters(endpoint)
    if params:
        op["parameters"] = params
    if endpoint.body is not None:
        content = {"application/json": {"schema": refs[(endpoint.body, "validation")]}}
        op["requestBody"] = {"required": True, "content": content}
    elif endpoint.text_body:
        content = {t: {"schema": {"type": "string"}} for t in endpoint.text_body}
        op["requestBody"] = {"required": True, "content": content}
    responses: dict[str, Any] = {}
    for status in (endpoint.status, *endpoint.also):
        if status == 204:
            responses[str(status)] = {"description": "完成，无内容"}
        elif endpoint.download is not None:
            content = {endpoint.download: {"schema": {"type": "string"}}}
            responses[str(status)] = {"description": "文件下载", "content": content}
        elif endpoint.response is None:  # a document of its own kind (this one)
            content = {"application/json": {"schema": {"type": "object"}}}
            responses[str(status)] = {"description": "成功", "content": content}
        else:
            schema = refs[(endpoint.response, "serialization")]
            responses[str(status)] = {"description": "成功", "content": {"application/json": {"schema": schema}}}
    has_body = endpoint.body is not None or bool(endpoint.text_body)
    wanted = ["400"] if has_body or endpoint.query is not None else []
    if has_body:
        wanted.append("415")
    if endpoint.roles is not None:
        wanted += ["401", "403"]
    if "{" in endpoint.path:
        wanted.append("404")
    if endpoint.method == "POST":
        wanted += ["409", "413"]
    for code in wanted:
        responses.setdefault(code, {"description": ERRORS[code], "content": error})
    if endpoint.path.endswith("/login"):
        responses["401"] = {"description": "用户名或密码错误（code: login_failed）", "content": error}
        responses["403"] = {"description": "账号已停用（code: disabled）", "content": error}
        responses["429"] = {"description": "登录尝试过于频繁（code: throttled）", "content": error}
    op["responses"] = responses
    return op


def build_document(endpoints: Sequence[Endpoint], version: str = "1.0.0") -> dict[str, Any]:
    """The OpenAPI 3.1 document for these endpoints."""
    refs, components = _schemas(endpoints)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.openapi_path, {})[endpoint.method.lower()] = _operation(endpoint, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "citygw 工作人员接口（广播、学校通知与人工服务）",
            "version": version,
            "description": (
                "城市工作人员与学校教职工的 JSON 接口。先 POST /api/staff/login 登录，服务器设置 "
                f"{COOKIE} 会话 Cookie（HttpOnly、SameSite=Strict，8小时有效）并返回 csrf_token；"
                f"此后除登录外的每个非 GET 请求都须带 {CSRF_HEADER} 请求头。"
                '错误一律为 JSON：{"error": "中文原因", "code": "..."}。'
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "staffSession": {"type": "apiKey", "in": "cookie", "name": COOKIE},
                "csrfToken": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            },
        },
    }
