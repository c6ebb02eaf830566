"""Fair shares per citizen: the numbers, who "the citizen" is, and the lock that makes counting safe.

A citizen is the phone they proved when there is one (the same person on SMS, WeChat and web chat),
else their citizen id. A limit is checked inside the booking's own transaction, after `hold` has
locked the citizen's row: a second request of the same citizen waits there until the first commits,
then counts what the first booked, so two requests at once cannot both pass."""

from __future__ import annotations

from sqlalchemy import ColumnElement
from sqlmodel import col, or_
from sqlmodel.ext.asyncio.session import AsyncSession

from common.database import dialect_insert
from intents.runtime import Answer, Context
from intents.store.models import HolderLock

APPOINTMENTS_PER_DEPARTMENT_DAY = 1  # hospital appointments, per hospital department and day
TICKETS_PER_ORDER = 6
TICKETS_PER_SCREENING = 6  # all of a citizen's orders for one screening together
OPEN_APPLICATIONS_PER_SERVICE = 3
BOOKINGS_PER_SERVICE_DAY = 2  # the generic booking kind: active bookings per resource kind and day


class LimitReached(Exception):
    """Raised inside a booking's transaction (which is then rolled back) with the citizen's answer."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.answer = Answer(text, refused=True)


def holder(ctx: Context) -> str:
    if ctx.verified_phone:
        return f"phone:{ctx.verified_phone}"
    return f"citizen:{ctx.citizen_id}" if ctx.citizen_id is not None else f"conversation:{ctx.conversation_id}"


def mine(ctx: Context, model) -> ColumnElement[bool]:
    """Rows of this citizen: by the holder they were made under, or by citizen id (a session whose phone
    proof expired is still the same citizen)."""
    by_holder = col(model.holder) == holder(ctx)
    return or_(by_holder, col(model.citizen_id) == ctx.citizen_id) if ctx.citizen_id is not None else by_holder


async def hold(db: AsyncSession, ctx: Context) -> None:
    """Lock this citizen's row until the transaction ends (PostgreSQL: a row lock; SQLite: the write
    lock); the first statement of the booking's transaction. One conditional insert makes the row on
    first use: a concurrent first use waits for it instead of failing."""
    insert = dialect_insert(db, HolderLock).values(holder=holder(ctx), uses=1)
    await db.exec(insert.on_conflict_do_update(index_elements=["holder"], set_={"uses": col(HolderLock.uses) + 1}))
