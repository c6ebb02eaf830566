"""The staff API's errors: one exception type carrying status, code and a Chinese reason, and
pydantic's validation errors turned into a 400 that names the field."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from pydantic_core import ErrorDetails


class ApiError(Exception):
    """Answered as {"error": message, "code": code, **extra} with the given HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> web.Response:
        return json_response({"error": self.message, "code": self.code, **self.extra}, self.status, self.headers)


def unauthenticated(message: str = "请先登录。") -> ApiError:
    return ApiError(401, "unauthenticated", message)


def forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "not_found", message)


def _default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_default)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers, dumps=dumps)


# --- validation errors in Chinese -----------------------------------------------------------------


def _field(error: ErrorDetails, tags: set[str]) -> str:
    # Discriminated unions put the tag ("districts") into the location: it is not a field name.
    parts = [str(p) for p in error["loc"] if not (isinstance(p, str) and p in tags)]
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):  # the bad or missing "type"
        parts.append(str((error.get("ctx") or {}).get("discriminator", "type")).strip("'"))
    return ".".join(parts) or "请求体"


def _choices(expected: Any) -> str:
    """pydantic's "'a', 'b' or 'c'" as “a”、“b”、“c”."""
    names = re.findall(r"'([^']*)'", str(expected))
    return "、".join(f"“{n}”" for n in names) if names else str(expected)


def _reason(error: ErrorDetails) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    reasons = {
        "missing": "缺少此字段",
        "extra_forbidden": "不认识这个字段",
        "string_type": "应为文本",
        "string_too_short": "不能为空" if ctx.get("min_length") == 1 else f"至少需要{ctx.get('min_length')}个字符",
        "string_too_long": f"不能超过{ctx.get('max_length')}个字符",
        "string_pattern_mismatch": "格式不对",
        "int_type": "应为整数",
        "int_parsing": "应为整数",
        "int_from_float": "应为整数",
        "bool_type": "应为 true 或 false",
        "bool_parsing": "应为 true 或 false",
        "literal_error": f"应为以下之一：{_choices(ctx.get('expected', ''))}",
        "enum": f"应为以下之一：{_choices(ctx.get('expected', ''))}",
        "union_tag_invalid": f"应为以下之一：{_choices(ctx.get('expected_tags', ''))}",
        "union_tag_not_found": "缺少此字段",
        "list_type": "应为列表",
        "too_short": f"至少需要{ctx.get('min_length')}项",
        "too_long": f"最多{ctx.get('max_length')}项",
        "greater_than_equal": f"不能小于{ctx.get('ge')}",
        "less_than_equal": f"不能大于{ctx.get('le')}",
        "datetime_type": "应为日期时间，例如 2026-11-25T10:00",
        "datetime_parsing": "应为日期时间，例如 2026-11-25T10:00",
        "datetime_from_date_parsing": "应为日期时间，例如 2026-11-25T10:00",
        "model_type": "应为对象",
        "model_attributes_type": "应为对象",
        "dict_type": "应为对象",
    }
    return reasons.get(kind, "无效")


def invalid(exc: ValidationError, where: str = "body") -> ApiError:
    """A 400 naming the first bad field (all of them are in "fields")."""
    tags = {"all", "districts", "communities", "topics", "list", "school", "grade", "classes"}
    problems = [{"field": _field(e, tags), "reason": _reason(e)} for e in exc.errors(include_url=False)]
    first = problems[0]
    prefix = "查询参数" if where == "query" else "字段"
    message = f"{prefix}“{first['field']}”{first['reason']}。"
    if len(problems) > 1:
        message += f"（另有{len(problems) - 1}处问题）"
    return ApiError(400, "invalid", message, field=first["field"], fields=problems)
