"""GET /metrics: the Prometheus text format, for Prometheus only.

With CITYGW_METRICS_TOKEN set, a scrape must carry `Authorization: Bearer <token>` (Prometheus's
`authorization` setting, deploy/prometheus.yml). Unset, only clients on this machine may scrape, and
not through a reverse proxy (a forwarded request came from somewhere else). Refusals say why.

Levels (queue depth, the breaker, recipients of broadcasts now sending) are read at scrape time.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway import metrics
from gateway.db.models import Broadcast, BroadcastRecipient
from gateway.inbound.bridge import RasaBridge
from gateway.outbound.queue import OutboundQueue

log = logging.getLogger(__name__)

RECIPIENT_STATUSES = ("queued", "sent", "delivered", "failed")
NEED_TOKEN = "需要令牌：请在请求头中带上 Authorization: Bearer <CITYGW_METRICS_TOKEN 的值>。"
WRONG_TOKEN = "令牌不正确：请使用 CITYGW_METRICS_TOKEN 设置的值。"
LOOPBACK_ONLY = "未设置 CITYGW_METRICS_TOKEN 时只允许本机直接抓取指标；从其他主机或经反向代理抓取，请先设置令牌。"


class Scrape:
    def __init__(
        self,
        token: str | None,
        bridge: RasaBridge,
        queues: Mapping[str, OutboundQueue[Any]],
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        self.token, self.bridge, self.queues, self.sessions = token, bridge, queues, sessions

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/metrics", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        refusal = self.refusal(request)
        if refusal is not None:
            return refusal
        await self.refresh()
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def refusal(self, request: web.Request) -> web.Response | None:
        if self.token:
            given = request.headers.get("Authorization", "")
            if not given.startswith("Bearer "):
                return _refuse(401, NEED_TOKEN, {"WWW-Authenticate": 'Bearer realm="metrics"'})
            if not hmac.compare_digest(given.removeprefix("Bearer ").encode(), self.token.encode()):
                return _refuse(403, WRONG_TOKEN)
            return None
        peer = request.transport.get_extra_info("peername") if request.transport else None
        forwarded = "Forwarded" in request.headers or "X-Forwarded-For" in request.headers
        if forwarded or not peer or not _loopback(peer[0]):
            return _refuse(403, LOOPBACK_ONLY)
        return None

    async def refresh(self) -> None:
        """The levels, read now. A backend that does not answer leaves its last value and is logged:
        the counters are still worth scraping while Redis or the database is away."""
        metrics.set_breaker(self.bridge.breaker.state)
        for name, queue in self.queues.items():
            try:
                metrics.set_queue_depth(name, await queue.depth())
            except Exception as exc:
                log.warning("metrics: %s queue depth unavailable (%s)", name, type(exc).__name__)
        try:
            metrics.set_broadcast_recipients(await self._sending_recipients(), RECIPIENT_STATUSES)
        except Exception as exc:
            log.warning("metrics: broadcast recipients unavailable (%s)", type(exc).__name__)

    async def _sending_recipients(self) -> dict[str, int]:
        r = BroadcastRecipient
        async with self.sessions() as db:
            rows = await db.exec(
                select(r.status, func.count())
                .join(Broadcast, col(Broadcast.id) == col(r.broadcast_id))
                .where(col(Broadcast.status) == "sending")
                .group_by(col(r.status))
            )
            return {status: int(n) for status, n in rows.all()}


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _refuse(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=reason + "\n", headers=headers, content_type="text/plain", charset="utf-8")
