"""What the domain needs from whoever runs it but does not own: small read and write ports, and the
registry their implementations are plugged into. The gateway plugs its own in when it starts the action
server (gateway/action_server.py); a service whose port is empty answers that it is unavailable."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class SchoolNotice:
    title: str
    sent_at: datetime  # UTC (naive when the database drops the zone)
    acknowledged: bool
    student: str | None  # the student it was about, when the school named one
    school: str | None


class SchoolNotices(Protocol):
    """The school notices a parent was sent: the broadcasts belong to whoever sends them."""

    async def recent(self, citizen_id: int, since: datetime, limit: int) -> list[SchoolNotice]:
        """Notices addressed to the citizen (sent or tried, not merely queued) since then, newest first."""
        ...

    async def is_guardian(self, citizen_id: int) -> bool:
        """Whether a school has recorded the citizen as a student's guardian."""
        ...


class AuditTrail(Protocol):
    """The audit log admins read: every read of a personal record, and every refused one."""

    async def record(self, action: str, target: str, detail: dict[str, Any]) -> None: ...


class PaymentUnavailable(Exception):
    """The payment provider could not be reached or refused the order: nothing was paid."""


@dataclass(frozen=True)
class ClosedOrder:
    """What closing an order found: it was paid after all (then with the provider's transaction), or it
    is closed and can no longer be paid."""

    paid: bool
    transaction_id: str | None = None
    paid_at: datetime | None = None


class Payments(Protocol):
    """The payment provider (WeChat Pay) the citizen pays through; money moves only there, and a bill or
    a held booking is settled only by the provider's verified notification (intents.payments.settle)."""

    async def open(self, out_trade_no: str, description: str, amount_fen: int, expires_at: datetime) -> str:
        """An order payable until expires_at (aware UTC); its pay link. PaymentUnavailable otherwise."""
        ...

    async def close(self, out_trade_no: str) -> ClosedOrder:
        """Make an order unpayable; when it was paid meanwhile, say so instead. PaymentUnavailable when
        the provider cannot tell."""
        ...

    async def refund(self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str) -> str:
        """Ask for a paid order's money back to the payer (the same out_refund_no again is the same
        refund); the provider's status (PROCESSING, SUCCESS). Its outcome arrives as a notification.
        PaymentUnavailable when the provider refuses or cannot be reached."""
        ...


@dataclass
class Ports:
    school_notices: SchoolNotices | None = None
    audit: AuditTrail | None = None
    payments: Payments | None = None


PORTS = Ports()


def plug(**implementations: Any) -> None:
    """Plug implementations in by port name: plug(school_notices=..., audit=..., payments=...)."""
    names = {f.name for f in fields(Ports)}
    unknown = set(implementations) - names
    if unknown:
        raise TypeError(f"no such port: {', '.join(sorted(unknown))}")
    for name, implementation in implementations.items():
        setattr(PORTS, name, implementation)
