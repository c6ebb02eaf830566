"""A payment provider for the domain's own tests, kept in memory: what the Payments port promises
(orders payable until they expire, closed on request unless paid, refunds once per refund number). The
gateway's implementation over WeChat Pay is tested against the local WeChat Pay server in tests/."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from intents.ports import ClosedOrder, PaymentUnavailable


@dataclass
class Order:
    amount_fen: int
    expires_at: datetime
    state: str = "NOTPAY"  # NOTPAY | SUCCESS | CLOSED
    transaction_id: str | None = None


@dataclass
class Provider:
    orders: dict[str, Order] = field(default_factory=dict)
    refunds: dict[str, tuple[str, int]] = field(default_factory=dict)  # out_refund_no → (out_trade_no, fen)
    down: bool = False

    async def open(self, out_trade_no: str, description: str, amount_fen: int, expires_at: datetime) -> str:
        if self.down:
            raise PaymentUnavailable("provider down")
        self.orders[out_trade_no] = Order(amount_fen, expires_at)
        return f"weixin://wxpay/bizpayurl?pr={out_trade_no}"

    def pay(self, out_trade_no: str) -> str:
        """The citizen pays: the transaction id, as the notification would carry it."""
        order = self.orders[out_trade_no]
        if order.state != "NOTPAY" or datetime.now(UTC) >= order.expires_at:
            raise ValueError(f"order {out_trade_no} cannot be paid ({order.state})")
        order.state, order.transaction_id = "SUCCESS", f"4200{len(self.orders):024d}"
        return order.transaction_id

    async def close(self, out_trade_no: str) -> ClosedOrder:
        if self.down:
            raise PaymentUnavailable("provider down")
        order = self.orders[out_trade_no]
        if order.state == "SUCCESS":
            return ClosedOrder(True, order.transaction_id, datetime.now(UTC))
        order.state = "CLOSED"
        return ClosedOrder(False)

    async def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str) -> str:
        if self.down:
            raise PaymentUnavailable("provider down")
        order = self.orders[out_trade_no]
        if order.state != "SUCCESS" or total_fen != order.amount_fen:
            raise PaymentUnavailable("not refundable")
        self.refunds.setdefault(out_refund_no, (out_trade_no, refund_fen))
        return "PROCESSING"
