"""The local WeChat Pay v3 server keeps the documented contract: merchant signatures are checked, answers
and notifications are signed with the platform key and decrypt with the APIv3 key, as the `wechatpayv3`
client library (an independent implementation, through payments/) verifies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3.utils import build_authorization

from payments.wechatpay import MerchantConfig, NotificationRejected, PaymentError, WeChatPayClient
from providers.local import LocalServer
from providers.wechatpay_api import LocalWeChatPay

MCHID, APPID, APIV3_KEY, SERIAL = (
    "1900000001",
    "wx00000000demo0001",
    "0123456789abcdef0123456789abcdef",
    "5E1A7B00C0FFEE",
)
MERCHANT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
MERCHANT_PEM = MERCHANT_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


class Merchant(LocalServer):
    """The merchant's notify_url: records each notification; answers `statuses` in turn, then 200."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.port, self.statuses, self.received = 0, list(statuses or []), []
        self.arrived = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/notify", self._notify)

    async def _notify(self, request: web.Request) -> web.Response:
        self.received.append((request.headers.copy(), await request.read()))
        self.arrived.set()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def merchant() -> AsyncIterator[Merchant]:
    async with Merchant() as running:
        yield running


@pytest.fixture
async def server() -> AsyncIterator[LocalWeChatPay]:
    async with LocalWeChatPay(
        MCHID, APPID, APIV3_KEY, MERCHANT_KEY.public_key(), SERIAL, retry_s=(0.05,), refund_s=0.05
    ) as running:
        yield running


def client(server: LocalWeChatPay, merchant: Merchant, key: str = MERCHANT_PEM) -> WeChatPayClient:
    config = MerchantConfig(MCHID, APPID, key, SERIAL, APIV3_KEY, f"{merchant.url}/notify", server.url)
    return WeChatPayClient(config)


def soon(minutes: int = 30) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


async def raw(server: LocalWeChatPay, method: str, path: str, body: str, authorization: str) -> tuple[int, dict]:
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, f"{server.url}{path}", data=body.encode(), headers=headers) as response:
            return response.status, await response.json(content_type=None)


def order_body(no: str = "JF2612070001abcd", total: int = 4230) -> str:
    return json.dumps(
        {
            "appid": APPID,
            "mchid": MCHID,
            "description": "水费",
            "out_trade_no": no,
            "notify_url": "http://127.0.0.1:9/notify",
            "amount": {"total": total, "currency": "CNY"},
        }
    )


async def test_an_order_paid_by_the_citizen_is_notified_signed_and_encrypted(server, merchant):
    pay = client(server, merchant)
    code_url = await pay.native("JF2612070001abcd", "克拉玛依水费 2026年11月", 4230, soon())
    assert code_url.startswith("weixin://wxpay/bizpayurl?pr=")
    assert (await pay.query("JF2612070001abcd")).trade_state == "NOTPAY"

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/_control/pay/JF2612070001abcd") as response:
            assert (await response.json())["notify_status"] == 200

    headers, body = merchant.received[0]
    event, transaction = await pay.notification(headers, body)  # the library verifies and decrypts it
    assert event == "TRANSACTION.SUCCESS"
    assert (transaction.trade_state, transaction.total_fen, transaction.mchid) == ("SUCCESS", 4230, MCHID)
    assert transaction.transaction_id and transaction.success_time
    assert "4230" not in body.decode()  # the transaction travels encrypted
    assert (await pay.query("JF2612070001abcd")).trade_state == "SUCCESS"


async def test_a_request_signed_with_another_key_is_refused(server, merchant):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(PaymentError):  # the client cannot even fetch the platform certificates
        await client(server, merchant, other_pem).native("JF2612070002abcd", "水费", 100, soon())
    auth = build_authorization("/v3/pay/transactions/native", "POST", MCHID, SERIAL, other, order_body())
    status, answer = await raw(server, "POST", "/v3/pay/transactions/native", order_body(), auth)
    assert (status, answer["code"]) == (401, "SIGN_ERROR")
    assert server.orders == {}


async def test_a_body_changed_after_signing_is_refused(server):
    auth = build_authorization("/v3/pay/transactions/native", "POST", MCHID, SERIAL, MERCHANT_KEY, order_body())
    changed = order_body(total=1)
    status, answer = await raw(server, "POST", "/v3/pay/transactions/native", changed, auth)
    assert (status, answer["code"]) == (401, "SIGN_ERROR")


async def test_missing_or_stale_authorization_is_refused(server):
    body = order_body()
    assert (await raw(server, "POST", "/v3/pay/transactions/native", body, "Bearer x"))[0] == 401
    stale = build_authorization("/v3/pay/transactions/native", "POST", MCHID, SERIAL, MERCHANT_KEY, body)
    old = str(int(time.time()) - 3600)
    stale = stale.replace(f'timestamp="{stale.split("timestamp=")[1][1:11]}"', f'timestamp="{old}"')
    assert (await raw(server, "POST", "/v3/pay/transactions/native", body, stale))[0] == 401


async def test_the_same_order_number_with_another_amount_is_refused(server, merchant):
    pay = client(server, merchant)
    first = await pay.native("JF2612070003abcd", "水费", 4230, soon())
    assert await pay.native("JF2612070003abcd", "水费", 4230, soon()) == first
    with pytest.raises(PaymentError) as refused:
        await pay.native("JF2612070003abcd", "水费", 1, soon())
    assert refused.value.code == "INVALID_REQUEST"


async def test_a_closed_or_expired_order_cannot_be_paid(server, merchant):
    pay = client(server, merchant)
    await pay.native("JF2612070004abcd", "水费", 4230, soon())
    await pay.close("JF2612070004abcd")
    await pay.native("JF2612070005abcd", "水费", 4230, datetime.now(UTC) + timedelta(seconds=1))
    server.orders["JF2612070005abcd"].time_expire = datetime.now(UTC) - timedelta(seconds=1)
    async with aiohttp.ClientSession() as http:
        for no in ("JF2612070004abcd", "JF2612070005abcd"):
            async with http.post(f"{server.url}/_control/pay/{no}") as response:
                assert response.status == 409
            assert (await pay.query(no)).trade_state == "CLOSED"
    assert merchant.received == []


async def test_a_forged_notification_does_not_verify(server, merchant):
    pay = client(server, merchant)
    await pay.native("JF2612070006abcd", "水费", 4230, soon())
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/_control/forged-notify/JF2612070006abcd") as response:
            assert response.status == 200
    headers, body = merchant.received[0]
    with pytest.raises(NotificationRejected):
        await pay.notification(headers, body)
    assert (await pay.query("JF2612070006abcd")).trade_state == "NOTPAY"


async def test_a_notification_not_acknowledged_is_sent_again():
    async with Merchant(statuses=[500]) as merchant:
        async with LocalWeChatPay(
            MCHID, APPID, APIV3_KEY, MERCHANT_KEY.public_key(), SERIAL, retry_s=(0.05,)
        ) as server:
            await client(server, merchant).native("JF2612070007abcd", "水费", 4230, soon())
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{server.url}/_control/pay/JF2612070007abcd") as response:
                    assert (await response.json())["notify_status"] == 500
            for _ in range(100):
                if len(merchant.received) == 2:
                    break
                await asyncio.sleep(0.05)
            assert [d.status for d in server.messages] == [500, 200]
            assert merchant.received[0][1] == merchant.received[1][1]  # the same notification, same id


async def paid_order(server: LocalWeChatPay, pay: WeChatPayClient, no: str, total: int) -> None:
    await pay.native(no, "克拉玛依电影票", total, soon())
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.url}/_control/pay/{no}", json={"notify": False}) as response:
            assert response.status == 200 and (await response.json())["notify_status"] is None


async def test_a_refund_is_processing_then_notified_signed_and_encrypted(server, merchant):
    pay = client(server, merchant)
    await paid_order(server, pay, "DD2612070001abcd", 9000)
    assert merchant.received == []  # paid with its notification lost: the order query still says so
    assert (await pay.query("DD2612070001abcd")).trade_state == "SUCCESS"

    asked = await pay.refund("DD2612070001abcd", "TKDD2612070001abcd", 9000, 9000, "市民取消")
    assert (asked.status, asked.refund_fen, asked.total_fen) == ("PROCESSING", 9000, 9000)
    again = await pay.refund("DD2612070001abcd", "TKDD2612070001abcd", 9000, 9000, "市民取消")
    assert again.refund_id == asked.refund_id  # the same refund number is the same refund

    await asyncio.wait_for(merchant.arrived.wait(), 10)
    headers, body = merchant.received[0]
    event, refund = await pay.notification(headers, body)  # the library verifies and decrypts it
    assert event == "REFUND.SUCCESS" and "9000" not in body.decode()
    assert (refund.status, refund.out_refund_no, refund.refund_fen, refund.mchid) == (
        "SUCCESS",
        "TKDD2612070001abcd",
        9000,
        MCHID,
    )
    assert (await pay.query("DD2612070001abcd")).trade_state == "REFUND"


async def test_a_refund_of_an_unpaid_order_or_of_more_than_was_paid_is_refused(server, merchant):
    pay = client(server, merchant)
    await pay.native("DD2612070002abcd", "克拉玛依电影票", 9000, soon())
    with pytest.raises(PaymentError) as unpaid:
        await pay.refund("DD2612070002abcd", "TKDD2612070002abcd", 9000, 9000, "市民取消")
    assert unpaid.value.code == "INVALID_REQUEST"
    await paid_order(server, pay, "DD2612070003abcd", 9000)
    await pay.refund("DD2612070003abcd", "TK1", 6000, 9000, "部分退款")
    with pytest.raises(PaymentError) as too_much:
        await pay.refund("DD2612070003abcd", "TK2", 6000, 9000, "部分退款")
    assert too_much.value.code == "NOT_ENOUGH"
    with pytest.raises(PaymentError) as other_amount:
        await pay.refund("DD2612070003abcd", "TK1", 3000, 9000, "部分退款")
    assert other_amount.value.code == "INVALID_REQUEST"
    with pytest.raises(PaymentError) as paid_order_closed:
        await pay.close("DD2612070003abcd")
    assert paid_order_closed.value.code == "ORDERPAID"
