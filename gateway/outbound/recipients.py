"""The ledger's broadcast rows (refs "recipient:<id>"): whether a recipient is still due, what the
provider said, and the switch of a recipient's row to the phone when its channel could not deliver."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Outgoing, SendResult, StatusUpdate
from channels.sms.wire import SmsWire
from gateway.batch import Batch
from gateway.broadcast import render
from gateway.config import Settings
from gateway.db.engine import select_rows, table_of
from gateway.db.models import Broadcast, BroadcastRecipient, ChannelIdentity, Citizen, utcnow

log = logging.getLogger(__name__)

FELL_BACK = "已改发短信"  # the note kept on the row after the SMS goes starts so: staff see why it was SMS
REPORTED = {"sent", "undelivered", "failed", "delivered"}  # what a recipient row records of a provider's report

_recipients = table_of(BroadcastRecipient)
# One row per sent message, executed for a whole batch at once. A status callback quick enough to
# arrive first has already said "delivered": that row keeps it. The fallback note stays on the row.
SENT = (
    update(_recipients)
    .where(_recipients.c.id == bindparam("b_id"), _recipients.c.status != "delivered")
    .values(
        status="sent",
        provider_id=bindparam("b_provider"),
        channel=bindparam("b_channel"),
        address=bindparam("b_to"),
        error=case((_recipients.c.error.startswith(FELL_BACK), _recipients.c.error), else_=None),
        attempts=_recipients.c.attempts + 1,
        updated_at=bindparam("b_now"),
    )
)


class RecipientRecords:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], overtakes: Callable[[str, str], bool]
    ) -> None:
        self.settings, self.sessions, self.overtakes = settings, sessions, overtakes
        # the dispatcher asks these once per message, dozens at a time: one statement per batch
        self._due: Batch[int, bool] = Batch(self._due_many)
        self._sent: Batch[dict[str, Any], None] = Batch(self._sent_many)

    async def should_send(self, recipient_id: int) -> bool:
        """Only a queued recipient of a broadcast that was not cancelled."""
        return await self._due.submit(recipient_id)

    async def sent(self, recipient_id: int, result: SendResult, message: Outgoing) -> None:
        # channel and address as sent: a fallback SMS replaces the WeChat message the row was made for
        await self._sent.submit(
            {"b_id": recipient_id, "b_provider": result.provider_id, "b_channel": message.channel, "b_to": message.to}
        )

    async def _due_many(self, recipient_ids: list[int]) -> list[bool]:
        async with self.sessions() as db:
            rows = await select_rows(
                db,
                select(col(BroadcastRecipient.id), col(BroadcastRecipient.status), col(Broadcast.status))
                .join(Broadcast, col(Broadcast.id) == col(BroadcastRecipient.broadcast_id))
                .where(col(BroadcastRecipient.id).in_(set(recipient_ids))),
            )
            due = {rid: status == "queued" and broadcast != "cancelled" for rid, status, broadcast in rows}
        return [due.get(rid, False) for rid in recipient_ids]

    async def _sent_many(self, rows: list[dict[str, Any]]) -> list[None]:
        async with self.sessions() as db:
            connection = await db.connection()
            await connection.execute(SENT, [{**row, "b_now": utcnow()} for row in rows])
            await db.commit()
        return [None] * len(rows)

    async def note(self, recipient_id: int, error: str) -> None:
        await self._update(recipient_id, error=error[:255])

    async def failed(self, recipient_id: int, error: str) -> tuple[int, str] | None:
        """Recorded as failed; (citizen id, channel) of the row, None when there is no such row."""
        async with self.sessions() as db:
            row = await db.get(BroadcastRecipient, recipient_id)
        if row is None:
            return None
        await self._update(recipient_id, status="failed", error=error[:255])
        return row.citizen_id, row.channel

    async def status(self, update_: StatusUpdate) -> tuple[int, str] | None:
        """A provider's report; (citizen id, channel) of the row, None when the provider id is not a
        broadcast recipient's."""
        async with self.sessions() as db:
            row = (
                (
                    await select_rows(
                        db,
                        select(BroadcastRecipient).where(
                            col(BroadcastRecipient.provider_id) == update_.provider_id,
                            col(BroadcastRecipient.channel) == update_.channel,
                        ),
                    )
                )
                .scalars()
                .first()
            )
            if row is None:
                return None
            status = "delivered" if update_.status == "read" else update_.status
            if status in REPORTED and status != row.status and self.overtakes(status, row.status):
                row.status = status
                if update_.error_code:
                    row.error = f"provider error {update_.error_code}"
                row.updated_at = utcnow()
                db.add(row)
                await db.commit()
            return row.citizen_id, row.channel

    async def switch_to_phone(self, recipient_id: int, why: str, phone: SmsWire, label: str) -> Outgoing | None:
        """Switch a recipient's row from the channel that failed (named `label`) to the phone and return
        the SMS; None when they have no phone, or opted out of SMS and this is not an emergency, or
        another copy already switched it."""
        async with self.sessions() as db:
            found = (
                await select_rows(
                    db,
                    select(BroadcastRecipient, Broadcast, Citizen)
                    .join(Broadcast, col(Broadcast.id) == col(BroadcastRecipient.broadcast_id))
                    .join(Citizen, col(Citizen.id) == col(BroadcastRecipient.citizen_id))
                    .where(col(BroadcastRecipient.id) == recipient_id),
                )
            ).first()
            if found is None:
                return None
            recipient, broadcast, citizen = found
            if recipient.channel == phone.name or broadcast.status == "cancelled":
                return None
            if citizen.sms_opted_out and broadcast.kind != "emergency":
                return None
            number = (
                citizen.phone
                or (
                    await select_rows(
                        db,
                        select(func.min(col(ChannelIdentity.address))).where(
                            col(ChannelIdentity.citizen_id) == citizen.id, col(ChannelIdentity.channel) == phone.name
                        ),
                    )
                ).scalar()
            )
            if not number:
                return None
            note = f"{FELL_BACK}：{label}未送达（{why}）"[:255]
            changed = await db.exec(
                update(BroadcastRecipient)
                .where(col(BroadcastRecipient.id) == recipient_id, col(BroadcastRecipient.channel) == recipient.channel)
                .values(channel=phone.name, address=number, status="queued", error=note, updated_at=utcnow())
            )
            await db.commit()
        if changed.rowcount != 1:
            return None
        log.info("recipient:%d: %s failed, falling back to SMS", recipient_id, recipient.channel)
        return render.outgoing(
            self.settings, broadcast, recipient_id, phone.name, number, reminder=recipient.reminded_at is not None
        )

    async def _update(self, recipient_id: int, **values: Any) -> None:
        async with self.sessions() as db:
            await db.exec(
                update(BroadcastRecipient)
                .where(col(BroadcastRecipient.id) == recipient_id)
                .values(attempts=col(BroadcastRecipient.attempts) + 1, updated_at=utcnow(), **values)
            )
            await db.commit()
