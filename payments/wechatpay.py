"""WeChat Pay API v3 for Native payments (a QR code / pay link) and their refunds, through the `wechatpayv3` client: it signs
each request with the merchant key, downloads the platform certificates (decrypted with the APIv3 key),
verifies every answer's signature, and verifies and decrypts payment notifications (`callback`).

The client is synchronous (requests): every call here runs it in a worker thread."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.core import Core

log = logging.getLogger(__name__)

WECHATPAY_API = "https://api.mch.weixin.qq.com"
CHINA = timezone(timedelta(hours=8))
TIMEOUT_S = (5, 15)  # connect, read


class PaymentError(Exception):
    """WeChat Pay refused or could not be reached; `code` is its error code when it answered."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class NotificationRejected(Exception):
    """A notification whose signature does not verify, or that does not decrypt: nothing in it is true."""


@dataclass(frozen=True)
class MerchantConfig:
    mchid: str
    appid: str
    private_key: str  # PEM of the merchant's API key
    cert_serial_no: str  # serial of the merchant's API certificate
    apiv3_key: str
    notify_url: str
    api_base: str = WECHATPAY_API


@dataclass(frozen=True)
class Transaction:
    """A transaction as WeChat Pay reports it (query or notification)."""

    out_trade_no: str
    trade_state: str  # NOTPAY | SUCCESS | CLOSED | REFUND | USERPAYING | PAYERROR | REVOKED
    mchid: str
    appid: str
    total_fen: int
    transaction_id: str | None = None
    success_time: datetime | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transaction:
        success = data.get("success_time")
        return cls(
            out_trade_no=str(data.get("out_trade_no", "")),
            trade_state=str(data.get("trade_state", "")),
            mchid=str(data.get("mchid", "")),
            appid=str(data.get("appid", "")),
            total_fen=int((data.get("amount") or {}).get("total", 0)),
            transaction_id=data.get("transaction_id"),
            success_time=datetime.fromisoformat(success) if success else None,
        )


@dataclass(frozen=True)
class RefundReport:
    """A refund as WeChat Pay reports it (the answer to a refund request, a query, or a notification)."""

    out_refund_no: str
    out_trade_no: str
    status: str  # PROCESSING | SUCCESS | CLOSED | ABNORMAL
    refund_fen: int
    total_fen: int
    mchid: str = ""
    refund_id: str | None = None
    success_time: datetime | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RefundReport:
        success = data.get("success_time")
        amount = data.get("amount") or {}
        return cls(
            out_refund_no=str(data.get("out_refund_no", "")),
            out_trade_no=str(data.get("out_trade_no", "")),
            # a refund's answer names it "status", its notification "refund_status"
            status=str(data.get("refund_status") or data.get("status") or ""),
            refund_fen=int(amount.get("refund", 0)),
            total_fen=int(amount.get("total", 0)),
            mchid=str(data.get("mchid", "")),
            refund_id=data.get("refund_id"),
            success_time=datetime.fromisoformat(success) if success else None,
        )


class _Core(Core):
    """wechatpayv3's Core at another API origin (the local stand-in). Core.__init__ assigns WeChat Pay's
    origin to `_gate_way` and downloads the platform certificates at once: the property keeps ours."""

    def __init__(self, api_base: str, **kwargs: Any) -> None:
        self._api_base = api_base.rstrip("/")
        super().__init__(**kwargs)

    @property
    def _gate_way(self) -> str:
        return self._api_base

    @_gate_way.setter
    def _gate_way(self, value: str) -> None:
        pass  # Core.__init__ writes WeChat Pay's own origin here


class _Client(WeChatPay):
    """WeChatPay (Native, direct merchant) over _Core. Sets what WeChatPay.__init__ sets (wechatpayv3 2.0.4,
    pinned): it builds its own Core, with no way to name another origin."""

    def __init__(self, config: MerchantConfig) -> None:
        self._type = WeChatPayType.NATIVE
        self._mchid, self._appid, self._notify_url = config.mchid, config.appid, config.notify_url
        self._partner_mode = False
        self._core = _Core(
            config.api_base,
            mchid=config.mchid,
            cert_serial_no=config.cert_serial_no,
            private_key=config.private_key,
            apiv3_key=config.apiv3_key,
            timeout=TIMEOUT_S,
        )


class WeChatPayClient:
    """Native orders, queries, closes and notifications for one merchant."""

    def __init__(self, config: MerchantConfig) -> None:
        self.config = config
        self._client: _Client | None = None
        self._lock = asyncio.Lock()

    async def _ready(self) -> _Client:
        # Built on first use: building it downloads the platform certificates.
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.to_thread(_Client, self.config)
                except Exception as exc:  # the library raises bare Exception for every failure
                    raise PaymentError(f"WeChat Pay client could not start: {exc}") from exc
            return self._client

    async def _call(self, method: str, **kwargs: Any) -> tuple[int, Any]:
        client = await self._ready()
        try:
            return await asyncio.to_thread(getattr(client, method), **kwargs)
        except Exception as exc:  # network errors, and "failed to verify the signature"
            raise PaymentError(f"WeChat Pay {method} failed: {exc}") from exc

    @staticmethod
    def _error(method: str, status: int, body: Any) -> PaymentError:
        try:
            data = json.loads(body)
        except (TypeError, ValueError):
            data = {}
        return PaymentError(f"WeChat Pay {method}: HTTP {status} {data.get('message', '')}", data.get("code"))

    async def native(self, out_trade_no: str, description: str, total_fen: int, expires_at: datetime) -> str:
        """A Native order; its code_url (weixin://wxpay/bizpayurl?pr=…) is the pay link."""
        status, body = await self._call(
            "pay",
            description=description,
            out_trade_no=out_trade_no,
            amount={"total": total_fen, "currency": "CNY"},
            time_expire=expires_at.astimezone(CHINA).isoformat(timespec="seconds"),
        )
        if status != 200:
            raise self._error("native order", status, body)
        return json.loads(body)["code_url"]

    async def query(self, out_trade_no: str) -> Transaction:
        status, body = await self._call("query", out_trade_no=out_trade_no)
        if status != 200:
            raise self._error("query", status, body)
        return Transaction.from_json(json.loads(body))

    async def close(self, out_trade_no: str) -> None:
        status, body = await self._call("close", out_trade_no=out_trade_no)
        if status != 204:
            raise self._error("close", status, body)

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> RefundReport:
        """Ask for (part of) a paid order's money back to the payer; the same out_refund_no again is the
        same refund. Its outcome arrives as a REFUND.* notification."""
        status, body = await self._call(
            "refund",
            out_refund_no=out_refund_no,
            out_trade_no=out_trade_no,
            amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
            reason=reason[:80],
        )
        if status != 200:
            raise self._error("refund", status, body)
        return RefundReport.from_json(json.loads(body))

    async def notification(self, headers: Mapping[str, str], body: bytes) -> tuple[str, Transaction | RefundReport]:
        """A notification's event type and what it reports (a transaction, or a refund for REFUND.*
        events), once its signature verifies and its resource decrypts; NotificationRejected otherwise."""
        client = await self._ready()
        try:
            data = await asyncio.to_thread(client.callback, headers, body)
        except Exception as exc:  # unknown signature type or algorithm, malformed JSON
            raise NotificationRejected(str(exc)) from exc
        if not data or not isinstance(data.get("resource"), dict):
            raise NotificationRejected("signature does not verify or the resource does not decrypt")
        event = str(data.get("event_type", ""))
        if event.startswith("REFUND."):
            return event, RefundReport.from_json(data["resource"])
        return event, Transaction.from_json(data["resource"])
