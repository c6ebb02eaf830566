"""Payments through WeChat Pay (bills, cinema tickets): the client built from the settings, the domain's
Payments port over it, the notification endpoint that alone settles an order, and the periodic sweep
that closes unpaid orders.

    POST /payments/wechatpay/notify   WeChat Pay's payment and refund notifications: the signature is
    verified and the resource decrypted by the client library; a payment's merchant and amount must match
    the order. Settling is idempotent (a repeated notification answers 204 and changes nothing); the
    citizen is then told on the channel they asked on. A payment that can serve nothing (its order closed
    first) is refunded at once. A notification that does not verify is refused (401) and pays nothing.

The sweep (PaymentSweeper, every CITYGW_PAYMENT_SWEEP_S) asks WeChat Pay about each order past its time
before closing it (a paid one is settled instead), gives a closed order's held seats back, and asks again
for refunds WeChat Pay has not accepted yet."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from common.clock import utcnow
from gateway.config import Settings
from gateway.db.models import AuditLog
from gateway.messaging import Messaging, public_url
from gateway.outbound.telling import Teller, conversant
from intents import payments as orders
from intents.ports import ClosedOrder, PaymentUnavailable
from payments.wechatpay import (
    MerchantConfig,
    NotificationRejected,
    PaymentError,
    RefundReport,
    Transaction,
    WeChatPayClient,
)

log = logging.getLogger(__name__)

NOTIFY_PATH = "/payments/wechatpay/notify"


def merchant_config(settings: Settings) -> MerchantConfig | None:
    """The merchant's configuration, or None when payments are off (no merchant id)."""
    if not settings.wechatpay_mchid:
        return None
    required = {
        "CITYGW_WECHATPAY_APPID": settings.wechatpay_appid,
        "CITYGW_WECHATPAY_PRIVATE_KEY": settings.wechatpay_private_key,
        "CITYGW_WECHATPAY_CERT_SERIAL_NO": settings.wechatpay_cert_serial_no,
        "CITYGW_WECHATPAY_APIV3_KEY": settings.wechatpay_apiv3_key,
    }
    missing = [name for name, value in required.items() if not value]
    if missing:
        raise ValueError(f"CITYGW_WECHATPAY_MCHID is set but {', '.join(missing)} is not")
    key = str(settings.wechatpay_private_key)
    if not key.lstrip().startswith("-----BEGIN"):
        key = Path(key).read_text()
    return MerchantConfig(
        mchid=settings.wechatpay_mchid,
        appid=str(settings.wechatpay_appid),
        private_key=key,
        cert_serial_no=str(settings.wechatpay_cert_serial_no),
        apiv3_key=str(settings.wechatpay_apiv3_key),
        notify_url=settings.wechatpay_notify_url or f"{public_url(settings)}{NOTIFY_PATH}",
        api_base=settings.wechatpay_api_base,
    )


class WeChatPayPayments:
    """The domain's Payments port (intents.ports) over WeChat Pay."""

    def __init__(self, client: WeChatPayClient) -> None:
        self.client = client

    async def open(self, out_trade_no: str, description: str, amount_fen: int, expires_at: Any) -> str:
        try:
            return await self.client.native(out_trade_no, description, amount_fen, expires_at)
        except PaymentError as exc:
            log.warning("WeChat Pay order %s not opened: %s", out_trade_no, exc)
            raise PaymentUnavailable(str(exc)) from exc

    async def close(self, out_trade_no: str) -> ClosedOrder:
        try:
            found = await self.client.query(out_trade_no)
            if found.trade_state == "SUCCESS":
                return ClosedOrder(True, found.transaction_id, found.success_time)
            if found.trade_state != "CLOSED":
                await self.client.close(out_trade_no)
            return ClosedOrder(False)
        except PaymentError as exc:
            if exc.code == "ORDER_NOT_EXIST":  # it never reached WeChat Pay: nothing can pay it
                return ClosedOrder(False)
            raise PaymentUnavailable(str(exc)) from exc

    async def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str) -> str:
        try:
            return (await self.client.refund(out_trade_no, out_refund_no, refund_fen, total_fen, reason)).status
        except PaymentError as exc:
            log.warning("WeChat Pay refund %s not accepted: %s", out_refund_no, exc)
            raise PaymentUnavailable(str(exc)) from exc


class Herald:
    """Tells citizens what became of their orders, on the channel they asked on, and keeps the audit."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], messaging: Messaging) -> None:
        self.sessions = sessions
        self.teller = Teller(messaging.wires, messaging.outbox.add, messaging.state)

    async def audit(self, action: str, out_trade_no: str, detail: dict[str, Any]) -> None:
        async with self.sessions() as db:
            db.add(AuditLog(action=action, target=f"paymentorder:{out_trade_no}", detail=detail))
            await db.commit()

    async def tell(self, notice: orders.Notice) -> None:
        """The message on the channel of the conversation that asked; the money is settled either way,
        so a failure is logged, and the citizen can ask again."""
        try:
            await self._send(notice)
        except Exception:
            log.exception("could not tell the citizen about %s", notice.key)

    async def _send(self, notice: orders.Notice) -> None:
        async with self.sessions() as db:
            to = await conversant(db, notice.conversation_id)
            if to is not None and to.channel in self.teller.wires:
                await self.teller.tell(db, to, notice.text)

    async def outcome(self, outcome: orders.Outcome, payments: WeChatPayPayments) -> None:
        """Audit and tell what settling or closing an order came to; refund what served nothing."""
        if isinstance(outcome, orders.Settled):
            await self.audit("payment.settled", outcome.out_trade_no, outcome.detail)
            await self.tell(outcome.notice)
        elif isinstance(outcome, orders.Unserved):
            log.error("order %s was paid but serves nothing (%s): refunding it", outcome.out_trade_no, outcome.reason)
            await self.audit("payment.refund_requested", outcome.out_trade_no, {"reason": outcome.reason})
            await orders.send_refund(self.sessions, payments, outcome.out_trade_no)
        else:
            await self.audit("payment.closed", outcome.out_trade_no, {})
            if outcome.notice is not None:
                await self.tell(outcome.notice)


class PaymentNotifications:
    def __init__(
        self,
        config: MerchantConfig,
        client: WeChatPayClient,
        sessions: async_sessionmaker[AsyncSession],
        messaging: Messaging,
    ) -> None:
        self.config, self.client, self.sessions = config, client, sessions
        self.payments = WeChatPayPayments(client)
        self.herald = Herald(sessions, messaging)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(NOTIFY_PATH, self.notify)]

    @staticmethod
    def _fail(status: int, reason: str) -> web.Response:
        # WeChat Pay reads {"code": "FAIL", "message"} on a refusal, and sends the notification again later.
        return web.json_response({"code": "FAIL", "message": reason}, status=status)

    async def notify(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event, report = await self.client.notification(request.headers, body)
        except NotificationRejected as exc:
            log.warning("payment notification refused: %s", exc)
            return self._fail(401, "signature does not verify")
        except PaymentError as exc:  # the platform certificates could not be fetched
            log.warning("payment notification not checked: %s", exc)
            return self._fail(503, "cannot verify now")
        if isinstance(report, RefundReport):
            return await self._refunded(event, report)
        if event != "TRANSACTION.SUCCESS" or report.trade_state != "SUCCESS":
            return web.Response(status=204)
        return await self._paid(report)

    async def _paid(self, paid: Transaction) -> web.Response:
        order = await orders.find_order(self.sessions, paid.out_trade_no)
        if order is None:
            return self._fail(404, "no such order")
        if (paid.mchid, paid.appid, paid.total_fen) != (self.config.mchid, self.config.appid, order.amount_fen):
            await self.herald.audit("payment.mismatch", paid.out_trade_no, {"total_fen": paid.total_fen})
            return self._fail(400, "merchant or amount does not match the order")
        outcome = await orders.settle(
            self.sessions, paid.out_trade_no, paid.transaction_id or "", paid.success_time or utcnow()
        )
        if outcome is not None:  # None: already settled, a repeated notification
            await self.herald.outcome(outcome, self.payments)
        return web.Response(status=204)

    async def _refunded(self, event: str, refund: RefundReport) -> web.Response:
        if refund.mchid != self.config.mchid:
            return self._fail(400, "merchant does not match")
        if event != "REFUND.SUCCESS" or refund.status != "SUCCESS":
            # REFUND.ABNORMAL / REFUND.CLOSED: the money did not reach the payer; staff act on the audit.
            await self.herald.audit("payment.refund_failed", refund.out_trade_no, {"event": event})
            return web.Response(status=204)
        notice = await orders.refund_arrived(
            self.sessions, refund.out_refund_no, refund.refund_fen, refund.success_time or utcnow()
        )
        if notice is not None:  # None: a repeat
            await self.herald.audit("payment.refunded", refund.out_trade_no, {"out_refund_no": refund.out_refund_no})
            await self.herald.tell(notice)
        return web.Response(status=204)


class PaymentSweeper:
    """The periodic close of unpaid orders (intents.payments.sweep), in the gateway's background. Every
    gateway may run one: each order is closed by conditional updates, so two sweeps close it once."""

    def __init__(self, payments: WeChatPayPayments, herald: Herald, interval_s: float) -> None:
        self.payments, self.herald, self.interval_s = payments, herald, interval_s
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def tick(self) -> list[orders.Outcome]:
        outcomes = await orders.sweep(self.herald.sessions, self.payments)
        for outcome in outcomes:
            await self.herald.outcome(outcome, self.payments)
        return outcomes

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.tick()
            except Exception as exc:  # database or provider outage: try again next time
                log.warning("payment sweep: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
