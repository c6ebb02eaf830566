"""A local server that speaks the WeChat Official Account HTTP API, for tests, demos and benchmarks.

WeChat has no sandbox reachable from here, so this implements the documented contract of the parts
the gateway uses: the access token (GET /cgi-bin/token), customer-service messages
(/cgi-bin/message/custom/send), template messages (/cgi-bin/message/template/send) and the custom menu
(/cgi-bin/menu/create, /cgi-bin/menu/get, /cgi-bin/menu/delete, /cgi-bin/get_current_selfmenu_info).

Behaviour that clients must cope with, as WeChat does it:
- Issuing a token invalidates the previous one at once (stricter than WeChat's short overlap), so two
  refreshers knock each other out: the reason production runs exactly one, under a lock.
- The customer-service API only reaches users inside the 48-hour window (45015) who still follow the
  account (43004); template messages ignore the window but still need a follower.
- Errors are HTTP 200 with {"errcode", "errmsg"}; errmsg carries a request id, so clients must branch on
  errcode, never on the text.

Tests and other processes drive it through JSON control endpoints under /_control/ (see `routes`), or
in-process through `LocalWeChat`'s methods. Run it alone with:

    python -m providers.wechat_api --port 8182 --app-id wx0123456789abcdef --secret s3cret
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import re
import secrets
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from providers.local import LocalServer, serve

ERRMSG = {
    -1: "system error",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40016: "invalid button size",
    40017: "invalid button type",
    40018: "invalid button name size",
    40019: "invalid button key size",
    40020: "invalid button url size",
    40023: "invalid sub button size",
    40024: "invalid sub button type",
    40025: "invalid sub button name size",
    40026: "invalid sub button key size",
    40027: "invalid sub button url size",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    42001: "access_token expired",
    43004: "require subscribe",
    44002: "empty post data",
    44004: "empty content",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    46003: "menu no exist",
    47001: "data format error",
}
PATHS = ("token", "custom", "template", "menu")
# Menu button types and the field each one needs; WeChat's own list.
KEYED_TYPES = frozenset(
    {
        "click",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
    }
)
OTHER_TYPES = {
    "view": "url",
    "miniprogram": "pagepath",
    "media_id": "media_id",
    "view_limited": "media_id",
    "article_id": "article_id",
    "article_view_limited": "article_id",
}
_OPENID = re.compile(r"[A-Za-z0-9_-]{6,64}")  # real ones are 28 characters; be lenient with test ids


class ApiError(Exception):
    """Answered as WeChat answers errors: HTTP 200 with errcode and errmsg."""

    def __init__(self, errcode: int, errmsg: str | None = None) -> None:
        super().__init__(errcode)
        self.errcode, self.errmsg = errcode, errmsg or ERRMSG.get(errcode, "error")


@dataclass
class Fault:
    """A queued failure: the next `times` calls to `path` (or any path, "*") wait latency_ms and then,
    when errcode is set, fail with it at http_status. times=None repeats until cleared."""

    path: str = "*"
    errcode: int | None = -1
    http_status: int = 200
    times: int | None = 1
    latency_ms: int = 0
    errmsg: str | None = None

    def __post_init__(self) -> None:
        if self.path not in (*PATHS, "*"):
            raise ValueError(f"path must be one of {[*PATHS, '*']}")


@dataclass(frozen=True)
class SentMessage:
    """One message the server accepted: kind is "custom" or "template"."""

    kind: str
    touser: str
    msgid: int
    text: str | None = None
    template_id: str | None = None
    data: dict[str, Any] | None = None
    url: str | None = None
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bytes(value: Any) -> int:
    return len(value.encode()) if isinstance(value, str) else -1


def validate_menu(body: Any) -> list[dict[str, Any]]:
    """The buttons of a menu/create body, or ApiError with WeChat's errcode for the first problem."""
    if not isinstance(body, dict) or not isinstance(body.get("button"), list):
        raise ApiError(47001)
    buttons = body["button"]
    if not 1 <= len(buttons) <= 3:
        raise ApiError(40016)
    for button in buttons:
        if not isinstance(button, dict):
            raise ApiError(47001)
        if not 1 <= _bytes(button.get("name")) <= 16:
            raise ApiError(40018)
        subs = button.get("sub_button") or []
        if not isinstance(subs, list):
            raise ApiError(47001)
        if not subs:
            _check_action(button, sub=False)
            continue
        if len(subs) > 5:
            raise ApiError(40023)
        for sub in subs:
            if not isinstance(sub, dict):
                raise ApiError(47001)
            if not 1 <= _bytes(sub.get("name")) <= 60:
                raise ApiError(40025)
            _check_action(sub, sub=True)
    return buttons


def _check_action(button: dict[str, Any], *, sub: bool) -> None:
    kind = button.get("type")
    if kind in KEYED_TYPES:
        if not 1 <= _bytes(button.get("key")) <= 128:
            raise ApiError(40026 if sub else 40019)
    elif kind in OTHER_TYPES:
        needed = OTHER_TYPES[kind]
        if kind in ("view", "miniprogram") and not 1 <= _bytes(button.get("url")) <= 1024:
            raise ApiError(40027 if sub else 40020)
        if not isinstance(button.get(needed), str) or not button[needed]:
            raise ApiError(47001)
    else:
        raise ApiError(40024 if sub else 40017)


class LocalWeChat(LocalServer):
    """The server and its state. Use `async with LocalWeChat(app_id, secret) as server:` in tests, or
    `python -m providers.wechat_api` as a process. `templates=None` accepts any template id; a
    collection restricts them (others answer 40037)."""

    def __init__(
        self,
        app_id: str,
        secret: str,
        port: int = 0,
        *,
        token_ttl_s: int = 7200,
        templates: Iterable[str] | None = None,
        latency_ms: int = 0,
    ) -> None:
        self.app_id, self.secret, self.port = app_id, secret, port
        self.token_ttl_s = token_ttl_s
        self.templates: set[str] | None = None if templates is None else set(templates)
        self.latency_ms = latency_ms
        self.app = self._make_app()
        self.reset()

    # --- state and in-process control -------------------------------------------------------------

    def reset(self) -> None:
        """Forget tokens, messages, faults, users and the menu (configuration stays)."""
        self.token: str | None = None
        self._token_expires_at = 0.0
        self.issued_tokens: list[str] = []
        self.token_requests = 0
        self.messages: list[SentMessage] = []
        self.menu: dict[str, Any] | None = None
        self.faults: deque[Fault] = deque()
        self._outside: set[str] = set()
        self._unsubscribed: set[str] = set()
        self._next_msgid = 1_000_000_001

    def expire_token(self) -> None:
        """The current token answers 42001 from now on (as if its 7200 s had passed)."""
        self._token_expires_at = 0.0

    def fail(
        self,
        errcode: int | None = -1,
        *,
        path: str = "*",
        http_status: int = 200,
        times: int | None = 1,
        latency_ms: int = 0,
        errmsg: str | None = None,
    ) -> None:
        """Queue a fault (see Fault)."""
        self.faults.append(Fault(path, errcode, http_status, times, latency_ms, errmsg))

    def outside_window(self, openid: str) -> None:
        """This follower last wrote more than 48 hours ago: customer-service messages get 45015."""
        self._outside.add(openid)

    def unsubscribed(self, openid: str) -> None:
        """This user unfollowed the account: every message to them gets 43004."""
        self._unsubscribed.add(openid)

    def interacted(self, openid: str) -> None:
        """This user (re)followed and just wrote to us: the window is open again."""
        self._outside.discard(openid)
        self._unsubscribed.discard(openid)

    def add_template(self, template_id: str) -> None:
        self.templates = (self.templates or set()) | {template_id}

    def snapshot(self) -> dict[str, Any]:
        return {
            "token_requests": self.token_requests,
            "tokens_issued": len(self.issued_tokens),
            "message_count": len(self.messages),
            "pending_faults": len(self.faults),
            "latency_ms": self.latency_ms,
            "menu": self.menu,
        }

    # --- HTTP --------------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.add_routes(
            [
                web.get("/cgi-bin/token", self._token),
                web.post("/cgi-bin/message/custom/send", self._custom),
                web.post("/cgi-bin/message/template/send", self._template),
                web.post("/cgi-bin/menu/create", self._menu_create),
                web.get("/cgi-bin/menu/get", self._menu_get),
                web.route("*", "/cgi-bin/menu/delete", self._menu_delete),
                web.get("/cgi-bin/get_current_selfmenu_info", self._selfmenu),
                web.get("/_control/state", self._c_state),
                web.get("/_control/messages", self._c_messages),
                web.get("/_control/menu", self._c_menu),
                web.post("/_control/reset", self._c_reset),
                web.post("/_control/expire_token", self._c_expire),
                web.post("/_control/faults", self._c_faults),
                web.delete("/_control/faults", self._c_clear_faults),
                web.post("/_control/latency", self._c_latency),
                web.post("/_control/outside_window", self._c_openid(self.outside_window)),
                web.post("/_control/unsubscribed", self._c_openid(self.unsubscribed)),
                web.post("/_control/interacted", self._c_openid(self.interacted)),
                web.post("/_control/templates", self._c_templates),
            ]
        )
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return self._error(exc.errcode, exc.errmsg)

    @staticmethod
    def _error(errcode: int, errmsg: str | None = None, status: int = 200) -> web.Response:
        # WeChat appends a request id to errmsg; keeping it reminds clients to branch on errcode only.
        message = f"{errmsg or ERRMSG.get(errcode, 'error')} rid: {secrets.token_hex(6)}"
        return web.json_response({"errcode": errcode, "errmsg": message}, status=status)

    async def _enter(self, path: str) -> web.Response | None:
        """Latency and the first matching queued fault, before the endpoint's own checks."""
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        if not self.faults:  # the common case stays O(1) under benchmark load
            return None
        for fault in self.faults:
            if fault.path in (path, "*"):
                break
        else:
            return None
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.errcode is None:
            return None
        return self._error(fault.errcode, fault.errmsg, fault.http_status)

    def _check_token(self, request: web.Request) -> None:
        token = request.query.get("access_token")
        if not token:
            raise ApiError(41001)
        if token != self.token:
            raise ApiError(40001)
        if time.monotonic() >= self._token_expires_at:
            raise ApiError(42001)

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        # Content-Type is not checked: wechatpy, like many clients, posts JSON bytes without one.
        raw = await request.read()
        if not raw.strip():
            raise ApiError(44002)
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(47001) from None
        if not isinstance(body, dict):
            raise ApiError(47001)
        return body

    def _recipient(self, body: dict[str, Any]) -> str:
        touser = body.get("touser")
        if not isinstance(touser, str) or not _OPENID.fullmatch(touser):
            raise ApiError(40003)
        if touser in self._unsubscribed:
            raise ApiError(43004)
        return touser

    def _msgid(self) -> int:
        self._next_msgid += 1
        return self._next_msgid

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if failed := await self._enter("token"):
            return failed
        query = request.query
        if query.get("grant_type") != "client_credential":
            raise ApiError(40002)
        if not query.get("appid"):
            raise ApiError(41002)
        if query["appid"] != self.app_id:
            raise ApiError(40013)
        if not query.get("secret"):
            raise ApiError(41004)
        if query["secret"] != self.secret:
            raise ApiError(40125)
        self.token = secrets.token_urlsafe(96)  # the new token replaces the old one at once
        self._token_expires_at = time.monotonic() + self.token_ttl_s
        self.issued_tokens.append(self.token)
        return web.json_response({"access_token": self.token, "expires_in": self.token_ttl_s})

    async def _custom(self, request: web.Request) -> web.Response:
        if failed := await self._enter("custom"):
            return failed
        self._check_token(request)
        body = await self._body(request)
        touser = self._recipient(body)
        if body.get("msgtype") != "text":
            raise ApiError(40008)
        text = body.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str):
            raise ApiError(47001)
        if not content:
            raise ApiError(44004)
        if touser in self._outside:
            raise ApiError(45015)
        self.messages.append(SentMessage("custom", touser, self._msgid(), text=content))
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _template(self, request: web.Request) -> web.Response:
        if failed := await self._enter("template"):
            return failed
        self._check_token(request)
        body = await self._body(request)
        touser = self._recipient(body)
        template_id = body.get("template_id")
        if not isinstance(template_id, str) or not template_id:
            raise ApiError(40037)
        if self.templates is not None and template_id not in self.templates:
            raise ApiError(40037)
        data = body.get("data")
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("value"), str) for v in data.values()
        ):
            raise ApiError(47001)
        url = body.get("url")
        if url is not None and not isinstance(url, str):
            raise ApiError(47001)
        msgid = self._msgid()  # no window check: template messages reach any follower
        self.messages.append(SentMessage("template", touser, msgid, template_id=template_id, data=data, url=url))
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    async def _menu_create(self, request: web.Request) -> web.Response:
        if failed := await self._enter("menu"):
            return failed
        self._check_token(request)
        buttons = validate_menu(await self._body(request))
        self.menu = {"button": copy.deepcopy(buttons)}
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _menu_get(self, request: web.Request) -> web.Response:
        if failed := await self._enter("menu"):
            return failed
        self._check_token(request)
        if self.menu is None:
            raise ApiError(46003)
        return web.json_response({"menu": self.menu})

    async def _menu_delete(self, request: web.Request) -> web.Response:
        if failed := await self._enter("menu"):
            return failed
        self._check_token(request)
        self.menu = None
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def _selfmenu(self, request: web.Request) -> web.Response:
        if failed := await self._enter("menu"):
            return failed
        self._check_token(request)
        if self.menu is None:
            return web.json_response({"is_menu_open": 0})
        # This endpoint wraps sub-buttons in {"list": [...]}, unlike menu/get.
        buttons = [
            {**b, "sub_button": {"list": b["sub_button"]}} if b.get("sub_button") else b for b in self.menu["button"]
        ]
        return web.json_response({"is_menu_open": 1, "selfmenu_info": {"button": buttons}})

    # --- control endpoints (JSON; 400 on bad input) ------------------------------------------------

    async def _c_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _c_menu(self, request: web.Request) -> web.Response:
        return web.json_response({"menu": self.menu})

    async def _c_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response(self.snapshot())

    async def _c_expire(self, request: web.Request) -> web.Response:
        self.expire_token()
        return web.json_response({"ok": True})

    async def _c_faults(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        raw = body.get("faults", [body]) if isinstance(body, dict) else body
        try:
            faults = [Fault(**f) for f in raw]
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=f"bad fault: {exc}") from None
        self.faults.extend(faults)
        return web.json_response({"pending_faults": len(self.faults)})

    async def _c_clear_faults(self, request: web.Request) -> web.Response:
        self.faults.clear()
        return web.json_response({"pending_faults": 0})

    async def _c_latency(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        latency = body.get("latency_ms") if isinstance(body, dict) else None
        if not isinstance(latency, int) or latency < 0:
            raise web.HTTPBadRequest(text="latency_ms must be a non-negative integer")
        self.latency_ms = latency
        return web.json_response({"latency_ms": latency})

    def _c_openid(self, action: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            body = await self._control_body(request)
            openid = body.get("openid") if isinstance(body, dict) else None
            if not isinstance(openid, str) or not openid:
                raise web.HTTPBadRequest(text="openid is required")
            action(openid)
            return web.json_response({"ok": True})

        return handler

    async def _c_templates(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        template_id = body.get("template_id") if isinstance(body, dict) else None
        if not isinstance(template_id, str) or not template_id:
            raise web.HTTPBadRequest(text="template_id is required")
        self.add_template(template_id)
        return web.json_response({"templates": sorted(self.templates or ())})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local WeChat Official Account API (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=8182)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--token-ttl", type=int, default=7200, help="expires_in of issued tokens, seconds")
    parser.add_argument("--template", action="append", help="a known template id (repeat); default: accept any")
    parser.add_argument("--latency-ms", type=int, default=0)
    args = parser.parse_args(argv)
    server = LocalWeChat(
        args.app_id,
        args.secret,
        args.port,
        token_ttl_s=args.token_ttl,
        templates=args.template,
        latency_ms=args.latency_ms,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(server, "LocalWeChat listening on {url}"))  # the readiness line a parent waits for


if __name__ == "__main__":
    main()
