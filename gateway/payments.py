"""Bill payments through WeChat Pay: the client built from the settings, the domain's Payments port over
it, and the notification endpoint that alone settles a bill.

    POST /payments/wechatpay/notify   WeChat Pay's payment notification: the signature is verified and the
    transaction decrypted by the client library; its merchant and amount must match the order. Settling
    is idempotent (a repeated notification answers 204 and changes nothing); the citizen is then told on
    the channel they asked on. A notification that does not verify is refused (401) and pays nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Outgoing, Reply
from channels.webchat.handler import topic
from common.clock import utcnow
from gateway.config import Settings
from gateway.db.models import AuditLog, ChannelIdentity, Conversation, UtilityAccount
from gateway.messaging import Messaging, public_url
from gateway.outbound.refs import NoticeRef
from intents import payments as bills
from intents.ports import ClosedOrder, PaymentUnavailable
from intents.runtime import pack
from payments.wechatpay import MerchantConfig, NotificationRejected, PaymentError, WeChatPayClient

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


class PaymentNotifications:
    def __init__(
        self,
        config: MerchantConfig,
        client: WeChatPayClient,
        sessions: async_sessionmaker[AsyncSession],
        messaging: Messaging,
    ) -> None:
        self.config, self.client, self.sessions, self.messaging = config, client, sessions, messaging

    def routes(self) -> list[web.RouteDef]:
        return [web.post(NOTIFY_PATH, self.notify)]

    @staticmethod
    def _fail(status: int, reason: str) -> web.Response:
        # WeChat Pay reads {"code": "FAIL", "message"} on a refusal, and sends the notification again later.
        return web.json_response({"code": "FAIL", "message": reason}, status=status)

    async def notify(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event, paid = await self.client.notification(request.headers, body)
        except NotificationRejected as exc:
            log.warning("payment notification refused: %s", exc)
            return self._fail(401, "signature does not verify")
        except PaymentError as exc:  # the platform certificates could not be fetched
            log.warning("payment notification not checked: %s", exc)
            return self._fail(503, "cannot verify now")
        if event != "TRANSACTION.SUCCESS" or paid.trade_state != "SUCCESS":
            return web.Response(status=204)
        order = await bills.find_order(self.sessions, paid.out_trade_no)
        if order is None:
            return self._fail(404, "no such order")
        if (paid.mchid, paid.appid, paid.total_fen) != (self.config.mchid, self.config.appid, order.amount_fen):
            await self._audit("payment.mismatch", paid.out_trade_no, {"total_fen": paid.total_fen})
            return self._fail(400, "merchant or amount does not match the order")
        paid_at = paid.success_time or utcnow()
        settled = await bills.settle(self.sessions, paid.out_trade_no, paid.transaction_id or "", paid_at)
        if settled is None:
            order = await bills.find_order(self.sessions, paid.out_trade_no)
            if order is not None and order.status == "closed":
                log.error("order %s was paid after it was closed: refund it", paid.out_trade_no)
                await self._audit("payment.after_close", paid.out_trade_no, {"transaction_id": paid.transaction_id})
            return web.Response(status=204)  # already settled: a repeated notification
        await self._audit(
            "payment.settled",
            settled.out_trade_no,
            {
                "account_no": settled.account_no,
                "period": settled.period,
                "amount_fen": settled.amount_fen,
                "payment_ref": settled.payment_ref,
                "transaction_id": settled.transaction_id,
            },
        )
        try:
            await self._tell(settled)
        except Exception:  # the bill is paid either way; the citizen can ask again
            log.exception("could not tell the citizen that order %s is paid", settled.out_trade_no)
        return web.Response(status=204)

    async def _audit(self, action: str, out_trade_no: str, detail: dict[str, Any]) -> None:
        async with self.sessions() as db:
            db.add(AuditLog(action=action, target=f"paymentorder:{out_trade_no}", detail=detail))
            await db.commit()

    async def _tell(self, settled: bills.Settled) -> None:
        """The confirmation on the channel the citizen paid from (the conversation that asked)."""
        async with self.sessions() as db:
            conversation = await db.get(Conversation, settled.conversation_id) if settled.conversation_id else None
            identity = await db.get(ChannelIdentity, conversation.identity_id) if conversation else None
            account = await db.get(UtilityAccount, settled.account_no)
        if identity is None or account is None:
            return
        text = settled.text(pack().utility_kind(account.kind).name)
        wire = self.messaging.wires.get(identity.channel)
        if wire is None:
            return
        if wire.answers_in_request:  # web chat: to the open page
            frame = {"type": "reply", "in_reply_to": None, **Reply(text).as_dict()}
            await self.messaging.state.publish(topic(identity.address), frame)
            return
        rendered = wire.render([Reply(text)]).messages[0]
        await self.messaging.outbox.add(
            Outgoing(
                channel=identity.channel,
                to=identity.address,
                text=rendered.text,
                ref=str(NoticeRef(f"paid:{settled.out_trade_no}")),
                segments=rendered.segments or 1,
            )
        )
