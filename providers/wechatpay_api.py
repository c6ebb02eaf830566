"""A local server that speaks WeChat Pay API v3 (direct merchant, Native payment), for tests and demos.

WeChat Pay has no sandbox reachable from here, so this implements the documented contract of the parts
the gateway uses:
- every merchant request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,
  signature=…,timestamp=…,serial_no=…`, an RSA-SHA256 signature over "METHOD\\nURL\\nTIMESTAMP\\nNONCE\\n
  BODY\\n" checked with the merchant's public key (401 SIGN_ERROR otherwise, or when the timestamp is
  more than five minutes off);
- every answer is signed with the platform key (`Wechatpay-Signature` over "TIMESTAMP\\nNONCE\\nBODY\\n"),
  whose certificate `GET /v3/certificates` hands out encrypted with the merchant's APIv3 key;
- `POST /v3/refund/domestic/refunds` (out_trade_no or transaction_id, out_refund_no, amount {refund,
  total, currency}) → the refund at status PROCESSING; it succeeds moments later and a signed, encrypted
  REFUND.SUCCESS notification (resource original_type "refund") goes to the refund's notify_url (else
  the order's); `GET /v3/refund/domestic/refunds/{out_refund_no}` → PROCESSING | SUCCESS. The same
  out_refund_no again answers the same refund; more than what is left of the payment: 403 NOT_ENOUGH;
- `POST /v3/pay/transactions/native` → code_url (the same out_trade_no with other parameters: 400
  INVALID_REQUEST), `GET /v3/pay/transactions/out-trade-no/{no}?mchid=` → NOTPAY | SUCCESS | CLOSED
  (an order past its time_expire can no longer be paid: CLOSED), `POST …/{no}/close` → 204;
- when the citizen pays, the payment notification (TRANSACTION.SUCCESS, the transaction encrypted with
  AEAD_AES_256_GCM under the APIv3 key, signed with the platform key) is POSTed to the order's
  notify_url and retried while the merchant does not answer 200 or 204.

The platform key and certificate are made at start. Control endpoints under /_control/ play the citizen:
`POST /_control/pay/{no}` pays (and notifies; with {"notify": false} the notification is lost), `POST /_control/renotify/{no}` sends the last
notification again, `POST /_control/forged-notify/{no}` sends a notification signed with another key
(nothing is paid), `GET /_control/orders`, `GET /_control/refunds` and `GET /_control/messages` (notifications sent). Run alone:

    python -m providers.wechatpay_api --port 8184 --mchid 1900000001 --appid wx00000000demo0001 \\
        --apiv3-key <32 characters> --merchant-public-key merchant.pub.pem --merchant-serial <hex>
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import secrets
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from providers.local import LocalServer, serve

SCHEME = "WECHATPAY2-SHA256-RSA2048"
CHINA = timezone(timedelta(hours=8))
CLOCK_SKEW_S = 300
OUT_TRADE_NO = re.compile(r"[A-Za-z0-9_\-|*]{6,32}")
OUT_REFUND_NO = re.compile(r"[A-Za-z0-9_\-|*@]{1,64}")
RETRY_S = (1.0, 2.0, 4.0, 8.0)  # WeChat Pay waits 15 s, 15 s, 30 s, 3 min…; shortened for tests and demos
REFUND_S = 0.5  # a refund to the payer's balance takes moments at WeChat Pay; to a bank card, days


class ApiError(Exception):
    """Answered as WeChat Pay answers errors: {"code", "message"} at an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


def wechat_time(at: datetime) -> str:
    """RFC 3339 in China time, as WeChat Pay writes times: 2026-11-25T10:00:00+08:00."""
    return at.astimezone(CHINA).isoformat(timespec="seconds")


def parse_authorization(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        raise ApiError(401, "SIGN_ERROR", f"Authorization must use {SCHEME}")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    missing = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - set(fields)
    if missing:
        raise ApiError(401, "SIGN_ERROR", f"Authorization lacks {', '.join(sorted(missing))}")
    return fields


def sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(public_key: rsa.RSAPublicKey, message: str, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def encrypt(apiv3_key: str, plaintext: str, associated_data: str) -> dict[str, str]:
    nonce = secrets.token_hex(6)  # 12 ASCII characters, used as the 12-byte GCM nonce
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext.encode(), associated_data.encode())
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(ciphertext).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def platform_certificate(key: rsa.RSAPrivateKey, now: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Local WeChat Pay platform")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * 5))
        .sign(key, hashes.SHA256())
    )


@dataclass
class Order:
    out_trade_no: str
    description: str
    total: int
    notify_url: str
    code_url: str
    time_expire: datetime | None
    trade_state: str = "NOTPAY"  # NOTPAY | SUCCESS | CLOSED | REFUND
    transaction_id: str | None = None
    success_time: datetime | None = None
    openid: str | None = None
    last_notification: str | None = None  # the body sent, for renotify

    def payable(self, now: datetime) -> bool:
        return self.trade_state == "NOTPAY" and (self.time_expire is None or now < self.time_expire)


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    order: Order
    refund: int
    notify_url: str
    reason: str | None
    create_time: datetime
    status: str = "PROCESSING"  # PROCESSING | SUCCESS
    success_time: datetime | None = None


@dataclass(frozen=True)
class Delivery:
    """One notification POSTed to a merchant and what it answered (0: no answer)."""

    out_trade_no: str
    notification_id: str
    status: int
    forged: bool = False
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LocalWeChatPay(LocalServer):
    def __init__(
        self,
        mchid: str,
        appid: str,
        apiv3_key: str,
        merchant_public_key: rsa.RSAPublicKey,
        merchant_serial: str,
        port: int = 0,
        retry_s: tuple[float, ...] = RETRY_S,
        refund_s: float = REFUND_S,
    ) -> None:
        if len(apiv3_key.encode()) != 32:
            raise ValueError("the APIv3 key is 32 bytes")
        self.mchid, self.appid, self.apiv3_key = mchid, appid, apiv3_key
        self.merchant_public_key, self.merchant_serial = merchant_public_key, merchant_serial.upper()
        self.port, self.retry_s, self.refund_s = port, retry_s, refund_s
        self.platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate = platform_certificate(self.platform_key, datetime.now(UTC))
        self.platform_serial = format(self.certificate.serial_number, "X")
        self.orders: dict[str, Order] = {}
        self.refunds: dict[str, Refund] = {}
        self.messages: list[Delivery] = []
        self._retries: set[asyncio.Task] = set()
        self._http: aiohttp.ClientSession | None = None
        self.app = self._make_app()

    def _make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/v3/certificates", self._certificates)
        app.router.add_post("/v3/pay/transactions/native", self._native)
        app.router.add_get("/v3/pay/transactions/out-trade-no/{no}", self._query)
        app.router.add_post("/v3/pay/transactions/out-trade-no/{no}/close", self._close)
        app.router.add_post("/v3/refund/domestic/refunds", self._refund)
        app.router.add_get("/v3/refund/domestic/refunds/{no}", self._query_refund)
        app.router.add_post("/_control/pay/{no}", self._c_pay)
        app.router.add_post("/_control/renotify/{no}", self._c_renotify)
        app.router.add_post("/_control/forged-notify/{no}", self._c_forged)
        app.router.add_get("/_control/orders", self._c_orders)
        app.router.add_get("/_control/refunds", self._c_refunds)
        app.router.add_get("/_control/messages", self._c_messages)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _cleanup(self, app: web.Application) -> None:
        for task in list(self._retries):
            task.cancel()
        if self._http is not None:
            await self._http.close()

    # --- signing both ways ------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response({"code": exc.code, "message": exc.message}, status=exc.status)

    async def _authenticated(self, request: web.Request) -> str:
        """The request's body once its merchant signature checks out."""
        body = await request.text()
        auth = parse_authorization(request.headers.get("Authorization", ""))
        if auth["mchid"] != self.mchid:
            raise ApiError(401, "SIGN_ERROR", "mchid does not match the merchant")
        if auth["serial_no"].upper() != self.merchant_serial:
            raise ApiError(401, "SIGN_ERROR", "serial_no is not the merchant's certificate")
        try:
            skew = abs(time.time() - int(auth["timestamp"]))
        except ValueError:
            raise ApiError(401, "SIGN_ERROR", "timestamp is not a number") from None
        if skew > CLOCK_SKEW_S:
            raise ApiError(401, "SIGN_ERROR", "timestamp is too far from now")
        message = f"{request.method}\n{request.raw_path}\n{auth['timestamp']}\n{auth['nonce_str']}\n{body}\n"
        if not verify(self.merchant_public_key, message, auth["signature"]):
            raise ApiError(401, "SIGN_ERROR", "signature does not verify")
        return body

    def signed_headers(self, body: str, key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": self.platform_serial,
            "Wechatpay-Signature-Type": SCHEME,
            "Wechatpay-Signature": sign(key or self.platform_key, f"{timestamp}\n{nonce}\n{body}\n"),
            "Request-ID": uuid.uuid4().hex,
        }

    def _answer(self, data: dict[str, Any] | None, status: int = 200) -> web.Response:
        body = json.dumps(data, ensure_ascii=False) if data is not None else ""
        headers = self.signed_headers(body)
        if data is None:
            return web.Response(status=status, headers=headers)
        return web.Response(status=status, text=body, content_type="application/json", headers=headers)

    # --- the merchant API ---------------------------------------------------------------------------

    async def _certificates(self, request: web.Request) -> web.Response:
        await self._authenticated(request)
        pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        entry = {
            "serial_no": self.platform_serial,
            "effective_time": wechat_time(self.certificate.not_valid_before_utc),
            "expire_time": wechat_time(self.certificate.not_valid_after_utc),
            "encrypt_certificate": encrypt(self.apiv3_key, pem, "certificate"),
        }
        return self._answer({"data": [entry]})

    async def _native(self, request: web.Request) -> web.Response:
        order = self._new_order(_json(await self._authenticated(request)))
        known = self.orders.get(order.out_trade_no)
        if known is not None:
            if (known.total, known.description, known.notify_url) != (order.total, order.description, order.notify_url):
                raise ApiError(400, "INVALID_REQUEST", "out_trade_no already used with other parameters")
            if known.trade_state in ("SUCCESS", "REFUND"):
                raise ApiError(403, "ORDERPAID", "the order is already paid")
            if known.trade_state == "CLOSED":
                raise ApiError(400, "ORDER_CLOSED", "the order is closed")
            return self._answer({"code_url": known.code_url})
        self.orders[order.out_trade_no] = order
        return self._answer({"code_url": order.code_url})

    def _new_order(self, body: dict[str, Any]) -> Order:
        if body.get("appid") != self.appid or body.get("mchid") != self.mchid:
            raise ApiError(400, "APPID_MCHID_NOT_MATCH", "appid and mchid do not match")
        out_trade_no, description, notify_url = (
            body.get("out_trade_no"),
            body.get("description"),
            body.get("notify_url"),
        )
        if not isinstance(out_trade_no, str) or not OUT_TRADE_NO.fullmatch(out_trade_no):
            raise ApiError(400, "PARAM_ERROR", "out_trade_no must be 6-32 letters, digits, _-|*")
        if not isinstance(description, str) or not 0 < len(description) <= 127:
            raise ApiError(400, "PARAM_ERROR", "description is required (at most 127 characters)")
        if not isinstance(notify_url, str) or not notify_url.startswith(("http://", "https://")):
            raise ApiError(400, "PARAM_ERROR", "notify_url must be an http(s) URL")
        amount = body.get("amount")
        total = amount.get("total") if isinstance(amount, dict) else None
        if type(total) is not int or total <= 0:
            raise ApiError(400, "PARAM_ERROR", "amount.total is a positive integer (fen)")
        if amount.get("currency", "CNY") != "CNY":  # type: ignore[union-attr]  # a dict: total was read from it
            raise ApiError(400, "PARAM_ERROR", "currency must be CNY")
        return Order(
            out_trade_no,
            description,
            total,
            notify_url,
            f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(8)}",
            _time(body.get("time_expire")),
        )

    def _order(self, request: web.Request) -> Order:
        order = self.orders.get(request.match_info["no"])
        if order is None:
            raise ApiError(404, "ORDER_NOT_EXIST", "no such order")
        return order

    async def _query(self, request: web.Request) -> web.Response:
        await self._authenticated(request)
        if request.query.get("mchid") != self.mchid:
            raise ApiError(400, "PARAM_ERROR", "mchid does not match")
        order = self._order(request)
        self._expire(order)
        return self._answer(self.transaction(order))

    async def _close(self, request: web.Request) -> web.Response:
        if _json(await self._authenticated(request)).get("mchid") != self.mchid:
            raise ApiError(400, "PARAM_ERROR", "mchid does not match")
        order = self._order(request)
        if order.trade_state in ("SUCCESS", "REFUND"):
            raise ApiError(400, "ORDERPAID", "the order is paid and cannot be closed")
        order.trade_state = "CLOSED"
        return self._answer(None, 204)

    def _expire(self, order: Order) -> None:
        if order.trade_state == "NOTPAY" and not order.payable(datetime.now(UTC)):
            order.trade_state = "CLOSED"

    def transaction(self, order: Order) -> dict[str, Any]:
        states = {"NOTPAY": "订单未支付", "SUCCESS": "支付成功", "CLOSED": "订单已关闭", "REFUND": "转入退款"}
        out: dict[str, Any] = {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": order.out_trade_no,
            "trade_type": "NATIVE",
            "trade_state": order.trade_state,
            "trade_state_desc": states[order.trade_state],
            "amount": {"total": order.total, "currency": "CNY"},
        }
        if order.trade_state in ("SUCCESS", "REFUND") and order.success_time is not None:
            out |= {
                "transaction_id": order.transaction_id,
                "bank_type": "OTHERS",
                "success_time": wechat_time(order.success_time),
                "payer": {"openid": order.openid},
                "amount": {
                    "total": order.total,
                    "payer_total": order.total,
                    "currency": "CNY",
                    "payer_currency": "CNY",
                },
            }
        return out

    # --- refunds ------------------------------------------------------------------------------------

    async def _refund(self, request: web.Request) -> web.Response:
        body = _json(await self._authenticated(request))
        order = self._paid_order(body)
        out_refund_no, amount = body.get("out_refund_no"), body.get("amount")
        if not isinstance(out_refund_no, str) or not OUT_REFUND_NO.fullmatch(out_refund_no):
            raise ApiError(400, "PARAM_ERROR", "out_refund_no must be 1-64 letters, digits, _-|*@")
        refund = amount.get("refund") if isinstance(amount, dict) else None
        total = amount.get("total") if isinstance(amount, dict) else None
        if type(refund) is not int or type(total) is not int or refund <= 0:
            raise ApiError(400, "PARAM_ERROR", "amount.refund and amount.total are positive integers (fen)")
        if amount.get("currency", "CNY") != "CNY":  # type: ignore[union-attr]  # a dict: refund was read from it
            raise ApiError(400, "PARAM_ERROR", "currency must be CNY")
        if total != order.total:
            raise ApiError(400, "PARAM_ERROR", "amount.total is not the order's total")
        known = self.refunds.get(out_refund_no)
        if known is not None:
            if (known.order.out_trade_no, known.refund) != (order.out_trade_no, refund):
                raise ApiError(400, "INVALID_REQUEST", "out_refund_no already used with other parameters")
            return self._answer(self.refund_json(known))
        refunded = sum(r.refund for r in self.refunds.values() if r.order is order)
        if refunded + refund > order.total:
            raise ApiError(403, "NOT_ENOUGH", "the refund is more than what is left of the payment")
        notify_url = body.get("notify_url") or order.notify_url
        if not isinstance(notify_url, str) or not notify_url.startswith(("http://", "https://")):
            raise ApiError(400, "PARAM_ERROR", "notify_url must be an http(s) URL")
        reason = body.get("reason") if isinstance(body.get("reason"), str) else None
        created = datetime.now(UTC)
        entry = Refund(
            out_refund_no,
            f"5030{created:%Y%m%d}{secrets.randbelow(10**18):018d}",
            order,
            refund,
            notify_url,
            reason,
            created,
        )
        self.refunds[out_refund_no] = entry
        order.trade_state = "REFUND"
        task = asyncio.create_task(self._complete_refund(entry))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)
        return self._answer(self.refund_json(entry))

    def _paid_order(self, body: dict[str, Any]) -> Order:
        out_trade_no, transaction_id = body.get("out_trade_no"), body.get("transaction_id")
        found = [
            o
            for o in self.orders.values()
            if (out_trade_no and o.out_trade_no == out_trade_no)
            or (transaction_id and o.transaction_id == transaction_id)
        ]
        if not found:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "no such order (out_trade_no or transaction_id)")
        if found[0].trade_state not in ("SUCCESS", "REFUND"):
            raise ApiError(400, "INVALID_REQUEST", "the order is not paid: nothing to refund")
        return found[0]

    async def _query_refund(self, request: web.Request) -> web.Response:
        await self._authenticated(request)
        refund = self.refunds.get(request.match_info["no"])
        if refund is None:
            raise ApiError(404, "RESOURCE_NOT_EXISTS", "no such refund")
        return self._answer(self.refund_json(refund))

    def refund_json(self, refund: Refund) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": refund.order.transaction_id,
            "out_trade_no": refund.order.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": wechat_time(refund.create_time),
            "status": refund.status,
            "amount": {
                "total": refund.order.total,
                "refund": refund.refund,
                "payer_total": refund.order.total,
                "payer_refund": refund.refund,
                "currency": "CNY",
            },
        }
        if refund.success_time is not None:
            out["success_time"] = wechat_time(refund.success_time)
        return out

    async def _complete_refund(self, refund: Refund) -> None:
        await asyncio.sleep(self.refund_s)
        refund.status, refund.success_time = "SUCCESS", datetime.now(UTC)
        plain = {
            "mchid": self.mchid,
            "out_trade_no": refund.order.out_trade_no,
            "transaction_id": refund.order.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": "SUCCESS",
            "success_time": wechat_time(refund.success_time),
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": refund.order.total,
                "refund": refund.refund,
                "payer_total": refund.order.total,
                "payer_refund": refund.refund,
            },
        }
        resource = encrypt(self.apiv3_key, json.dumps(plain, ensure_ascii=False), "refund")
        body = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "create_time": wechat_time(refund.success_time),
                "resource_type": "encrypt-resource",
                "event_type": "REFUND.SUCCESS",
                "summary": "退款成功",
                "resource": {"original_type": "refund", **resource},
            },
            ensure_ascii=False,
        )
        await self._deliver_to(refund.order.out_trade_no, refund.notify_url, body)

    # --- the citizen's side: paying, and the notification --------------------------------------------

    def pay(self, out_trade_no: str, openid: str = "oLocalPayer0000000000000000") -> Order:
        order = self.orders.get(out_trade_no)
        if order is None:
            raise ApiError(404, "ORDER_NOT_EXIST", "no such order")
        self._expire(order)
        if order.trade_state != "NOTPAY":
            raise ApiError(409, order.trade_state, f"the order is {order.trade_state}, it cannot be paid")
        order.trade_state, order.openid = "SUCCESS", openid
        order.success_time = datetime.now(UTC)
        order.transaction_id = f"4200{order.success_time:%Y%m%d}{secrets.randbelow(10**18):018d}"
        return order

    def notification(self, order: Order) -> str:
        resource = encrypt(self.apiv3_key, json.dumps(self.transaction(order), ensure_ascii=False), "transaction")
        return json.dumps(
            {
                "id": str(uuid.uuid4()),
                "create_time": wechat_time(datetime.now(UTC)),
                "resource_type": "encrypt-resource",
                "event_type": "TRANSACTION.SUCCESS",
                "summary": "支付成功",
                "resource": {"original_type": "transaction", **resource},
            },
            ensure_ascii=False,
        )

    async def notify(self, out_trade_no: str, url: str, body: str, key: rsa.RSAPrivateKey | None = None) -> int:
        """POST one notification; the merchant's HTTP status (0 when it did not answer)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        headers = {"Content-Type": "application/json", **self.signed_headers(body, key)}
        try:
            async with self._http.post(url, data=body.encode(), headers=headers) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.messages.append(Delivery(out_trade_no, json.loads(body)["id"], status, forged=key is not None))
        return status

    async def _retry(self, out_trade_no: str, url: str, body: str) -> None:
        for delay in self.retry_s:
            await asyncio.sleep(delay)
            if await self.notify(out_trade_no, url, body) in (200, 204):
                return

    async def _deliver_to(self, out_trade_no: str, url: str, body: str) -> int:
        status = await self.notify(out_trade_no, url, body)
        if status not in (200, 204):
            task = asyncio.create_task(self._retry(out_trade_no, url, body))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)
        return status

    async def _deliver(self, order: Order, body: str) -> int:
        order.last_notification = body
        return await self._deliver_to(order.out_trade_no, order.notify_url, body)

    # --- control endpoints -----------------------------------------------------------------------------

    async def _c_pay(self, request: web.Request) -> web.Response:
        body = await self._control_body(request)
        openid = body.get("openid") if isinstance(body, dict) else None
        order = self.pay(request.match_info["no"], **({"openid": openid} if isinstance(openid, str) else {}))
        if isinstance(body, dict) and body.get("notify") is False:  # paid, and the notification is lost
            return web.json_response({"order": self.transaction(order), "notify_status": None})
        status = await self._deliver(order, self.notification(order))
        return web.json_response({"order": self.transaction(order), "notify_status": status})

    async def _c_renotify(self, request: web.Request) -> web.Response:
        order = self._order(request)
        if order.last_notification is None:
            raise ApiError(409, "NOT_NOTIFIED", "no notification was sent for this order")
        status = await self.notify(order.out_trade_no, order.notify_url, order.last_notification)
        return web.json_response({"notify_status": status})

    async def _c_forged(self, request: web.Request) -> web.Response:
        """A SUCCESS notification for an unpaid order, signed with a key that is not the platform's."""
        order = self._order(request)
        forged = Order(**{**asdict(order), "trade_state": "SUCCESS"})
        forged.success_time, forged.transaction_id = datetime.now(UTC), "4200" + "0" * 24
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        status = await self.notify(order.out_trade_no, order.notify_url, self.notification(forged), other)
        return web.json_response({"notify_status": status})

    async def _c_refunds(self, request: web.Request) -> web.Response:
        return web.json_response({"refunds": [self.refund_json(r) for r in self.refunds.values()]})

    async def _c_orders(self, request: web.Request) -> web.Response:
        for order in self.orders.values():
            self._expire(order)
        return web.json_response({"orders": [self.transaction(o) for o in self.orders.values()]})


def _json(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        raise ApiError(400, "PARAM_ERROR", "body must be JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "PARAM_ERROR", "body must be a JSON object")
    return data


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ApiError(400, "PARAM_ERROR", "time_expire is RFC 3339 with a zone, e.g. 2026-11-25T10:30:00+08:00")
    return at


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local WeChat Pay API v3 (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=8184)
    parser.add_argument("--mchid", required=True)
    parser.add_argument("--appid", required=True)
    parser.add_argument("--apiv3-key", required=True)
    parser.add_argument("--merchant-public-key", type=Path, required=True, help="PEM file of the merchant's key")
    parser.add_argument("--merchant-serial", required=True, help="serial number of the merchant's certificate")
    args = parser.parse_args(argv)
    public_key = serialization.load_pem_public_key(args.merchant_public_key.read_bytes())
    if not isinstance(public_key, rsa.RSAPublicKey):
        parser.error("the merchant key must be RSA")
    server = LocalWeChatPay(args.mchid, args.appid, args.apiv3_key, public_key, args.merchant_serial, args.port)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(server, "LocalWeChatPay listening on {url}"))  # the readiness line a parent waits for


if __name__ == "__main__":
    main()
