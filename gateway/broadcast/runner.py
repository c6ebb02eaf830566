"""The broadcast worker: turns due broadcasts into recipient rows and queued messages, in batches.

One step of a fan-out, repeated until the audience is exhausted:
  1. one transaction: where the next `batch` citizens of the audience with id > fanout_cursor end
     (keyset pagination, so memory stays flat however big the audience), their recipient rows written
     by the database (INSERT … SELECT … ON CONFLICT DO NOTHING on (broadcast_id, citizen_id)), and the
     cursor moved to that end — only if it still has the value read (a conditional UPDATE: two
     workers can never both advance it);
  2. after the commit: queued recipients with id > enqueued_upto handed to the outbound queue in one
     add_many, then enqueued_upto moved (again conditionally) — only while the queue of the
     broadcast's priority holds fewer than `backlog` messages. The rows run ahead; the queue stays
     short, so quiet hours and a cancel stop a notice within seconds of sending (not after everything
     already queued) and Redis holds at most the window, not the audience.
A crash between any two of these leaves a state the next worker finishes: rows not committed are
made again, rows committed but not queued are queued, rows queued twice are dropped by the dispatcher
(should_send, then a per-ref send claim). A lease in the shared state keeps a second worker from doing
the same work meanwhile; once a crashed worker's lease lapses, any runner resumes the broadcast.
A broadcast is completed when its fan-out is done and no recipient is queued any more."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import case, exists, or_, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Outgoing
from gateway import metrics
from gateway.broadcast import audience as audiences
from gateway.broadcast import render
from gateway.broadcast.lease import Lease
from gateway.broadcast.quiet import quiet_now, utc_now
from gateway.config import Settings
from gateway.db.engine import id_column, select_rows
from gateway.db.models import Broadcast, BroadcastRecipient, utcnow
from gateway.logs import where
from gateway.outbound.queue import OutboundQueue
from gateway.state import StateStore

log = logging.getLogger(__name__)

FANOUT_DONE = 2**31 - 1  # fanout_cursor once every citizen id has been considered


@dataclass(frozen=True)
class Content:
    """What every recipient of one broadcast is sent (render.Content)."""

    kind: str
    title: str
    body: str
    urgent: bool


class BroadcastRunner:
    """Run one per worker process (the gateway runs one in-process). run() until stop()."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        state: StateStore,
        outbox: OutboundQueue,
        *,
        durable_queue: bool = True,
        poll_s: float = 1.0,
        lease_s: int = 30,
        batch: int | None = None,
        max_active: int = 4,
        idle_s: float = 2.0,
        backlog: int | None = None,
    ) -> None:
        self.settings, self.sessions, self.state, self.outbox = settings, sessions, state, outbox
        # An in-process queue dies with its process: a broadcast resumed here is re-enqueued in full.
        self.durable_queue = durable_queue
        self.poll_s, self.lease_s, self.max_active = poll_s, lease_s, max(1, max_active)
        self.batch = max(1, batch or settings.broadcast_batch)
        # Messages allowed in the queue per priority before the fan-out waits for the dispatcher: with
        # the default batch, 10,000 ≈ 20 s of sending at bench/broadcast's rate, refilled every idle_s.
        self.backlog = max(1, backlog or 10 * self.batch)
        # a broadcast whose fan-out is done waits for the dispatcher: look at it every idle_s only
        self.idle_s = idle_s
        self._resting: dict[int, float] = {}  # broadcast id → loop time of its next look
        self._active: dict[int, asyncio.Task[bool]] = {}
        self._enqueued_here: set[int] = set()
        self._stopping = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask run() to return; fan-outs stop after their current step (the next worker resumes them)."""
        self._stopping.set()

    async def run(self) -> None:
        log.info("broadcast runner started (batch %d)", self.batch)
        try:
            while not self._stopping.is_set():
                try:
                    await self.tick()
                except Exception as exc:  # database or state outage: wait it out
                    log.warning("broadcast runner: %s at %s", type(exc).__name__, where(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_s)
        finally:
            await self.idle()
            log.info("broadcast runner stopped")

    async def idle(self) -> None:
        """Wait for the fan-outs in flight."""
        if self._active:
            await asyncio.gather(*self._active.values(), return_exceptions=True)

    async def tick(self) -> list[int]:
        """Start work on due broadcasts not already in hand here; returns their ids."""
        started = []
        now = asyncio.get_running_loop().time()
        due = await self._due()
        self._resting = {b: t for b, t in self._resting.items() if b in due}  # forget finished ones
        for broadcast_id, emergency in due.items():
            # an emergency never waits for a free slot behind long notice fan-outs
            if broadcast_id in self._active or (len(self._active) >= self.max_active and not emergency):
                continue
            if self._resting.get(broadcast_id, 0.0) > now:
                continue
            task = asyncio.create_task(self._guarded(broadcast_id), name=f"broadcast-{broadcast_id}")
            self._active[broadcast_id] = task

            def forget(_task: asyncio.Task[bool], b: int = broadcast_id) -> None:
                self._active.pop(b, None)

            task.add_done_callback(forget)
            started.append(broadcast_id)
        return started

    async def due(self) -> list[int]:
        """Scheduled or sending broadcasts whose time has come, emergencies first; ordinary notices
        wait while it is quiet hours (a fan-out under way pauses and resumes after them)."""
        return list(await self._due())

    async def _due(self) -> dict[int, bool]:
        """due() as {broadcast id: is an emergency}, in the same order."""
        quiet = quiet_now(self.settings)
        async with self.sessions() as db:
            rows = (
                await select_rows(
                    db,
                    select(id_column(Broadcast), col(Broadcast.kind), col(Broadcast.urgent))
                    .where(
                        col(Broadcast.status).in_(("scheduled", "sending")),
                        or_(
                            col(Broadcast.scheduled_at).is_(None), col(Broadcast.scheduled_at) <= utc_now(self.settings)
                        ),
                    )
                    .order_by(case((col(Broadcast.kind) == "emergency", 0), else_=1), col(Broadcast.id))
                    .limit(50),
                )
            ).all()
        return {b: kind == "emergency" for b, kind, urgent in rows if not quiet or kind == "emergency" or urgent}

    async def _guarded(self, broadcast_id: int) -> bool:
        try:
            return await self.run_broadcast(broadcast_id)
        except Exception as exc:
            # no exception text: database errors quote the statement's parameters (phone numbers)
            log.warning(
                "broadcast %d: fan-out step failed (%s at %s); it resumes on the next pass",
                broadcast_id,
                type(exc).__name__,
                where(exc),
            )
            return False

    # --- one broadcast --------------------------------------------------------------------------

    async def run_broadcast(self, broadcast_id: int) -> bool:
        """Fan out (or resume) one broadcast under its lease, until its audience is queued, it is
        cancelled, quiet hours begin or the lease is lost. False if another worker holds it."""
        lease = Lease(self.state, f"{self.settings.queue_prefix}:broadcast:{broadcast_id}:fanout", self.lease_s)
        if not await lease.acquire():
            return False
        try:
            content = await self._begin(broadcast_id)
            if content is None:
                return False
            if not self.durable_queue and broadcast_id not in self._enqueued_here:
                await self._requeue_lost(broadcast_id, content)
            self._enqueued_here.add(broadcast_id)
            exempt = content.kind == "emergency" or content.urgent
            while lease.held and not self._stopping.is_set():
                if not exempt and quiet_now(self.settings):
                    log.info("broadcast %d: quiet hours, pausing", broadcast_id)
                    break
                grew = await self._fanout_step(broadcast_id, content.kind == "emergency")
                queued = await self._enqueue_step(broadcast_id, content)
                if not grew and not queued:
                    if not await self._complete_if_done(broadcast_id):
                        self._resting[broadcast_id] = asyncio.get_running_loop().time() + self.idle_s
                    break
            return True
        finally:
            await lease.release()

    async def _begin(self, broadcast_id: int) -> Content | None:
        """scheduled → sending (once, by whoever gets there first); a sending one is resumed."""
        async with self.sessions() as db:
            await db.exec(
                update(Broadcast)
                .where(col(Broadcast.id) == broadcast_id, col(Broadcast.status) == "scheduled")
                .values(status="sending", started_at=utcnow())
            )
            await db.commit()
            row = (
                await select_rows(
                    db,
                    select(
                        col(Broadcast.kind),
                        col(Broadcast.title),
                        col(Broadcast.body),
                        col(Broadcast.urgent),
                        col(Broadcast.status),
                    ).where(col(Broadcast.id) == broadcast_id),
                )
            ).first()
        if row is None or row.status != "sending":
            return None
        return Content(row.kind, row.title, row.body, row.urgent)

    async def _fanout_step(self, broadcast_id: int, emergency: bool) -> bool:
        """Recipient rows for the next batch of the audience; False when there is nothing left to do."""
        async with self.sessions() as db:
            b = (
                await select_rows(
                    db,
                    select(
                        col(Broadcast.fanout_cursor),
                        col(Broadcast.status),
                        col(Broadcast.audience),
                        col(Broadcast.school_id),
                    ).where(col(Broadcast.id) == broadcast_id),
                )
            ).one()
            if b.status != "sending" or b.fanout_cursor >= FANOUT_DONE:
                return False
            spec = audiences.parse(b.audience, b.school_id)
            end = await audiences.page_end(db, spec, b.fanout_cursor, self.batch)
            inserted = 0
            if end is not None:
                inserted = await audiences.insert_recipients(
                    db, spec, emergency, broadcast_id, b.fanout_cursor, end, utcnow()
                )
            moved = await db.exec(
                update(Broadcast)
                .where(
                    col(Broadcast.id) == broadcast_id,
                    col(Broadcast.fanout_cursor) == b.fanout_cursor,
                    col(Broadcast.status) == "sending",
                )
                .values(
                    fanout_cursor=FANOUT_DONE if end is None else end,
                    recipient_total=col(Broadcast.recipient_total) + inserted,
                )
            )
            if moved.rowcount != 1:  # cancelled, or another worker moved it first: its rows stand
                await db.rollback()
                return False
            await db.commit()
        metrics.BROADCAST_RECIPIENTS_WRITTEN.inc(inserted)
        if end is None:
            log.info("broadcast %d: fan-out complete", broadcast_id)
        return end is not None

    async def _enqueue_step(self, broadcast_id: int, content: Content) -> int:
        """Queued recipients past enqueued_upto to the dispatcher, as many as the backlog window has
        room for; returns how many."""
        room = await self._room(render.priority(content.kind, content.urgent))
        if room <= 0:
            return 0
        async with self.sessions() as db:
            b = (
                await select_rows(
                    db,
                    select(col(Broadcast.enqueued_upto), col(Broadcast.status)).where(
                        col(Broadcast.id) == broadcast_id
                    ),
                )
            ).one()
            if b.status != "sending":
                return 0
            rows = await self._queued(db, broadcast_id, b.enqueued_upto, limit=min(room, self.batch))
        if not rows:
            return 0
        await self.outbox.add_many(self._messages(content, rows))
        async with self.sessions() as db:
            await db.exec(
                update(Broadcast)
                .where(col(Broadcast.id) == broadcast_id, col(Broadcast.enqueued_upto) == b.enqueued_upto)
                .values(enqueued_upto=rows[-1].id)
            )
            await db.commit()
        return len(rows)

    async def _room(self, priority: str) -> int:
        depth = (await self.outbox.depth())[priority]
        return self.backlog - depth["ready"] - depth["pending"]

    async def _queued(
        self, db: AsyncSession, broadcast_id: int, after: int, upto: int | None = None, limit: int | None = None
    ) -> list[Any]:
        r = BroadcastRecipient
        query = (
            select(col(r.id), col(r.channel), col(r.address), col(r.reminded_at))
            .where(col(r.broadcast_id) == broadcast_id, col(r.id) > after, col(r.status) == "queued")
            .order_by(col(r.id))
            .limit(limit or self.batch)
        )
        if upto is not None:
            query = query.where(col(r.id) <= upto)
        return list((await select_rows(db, query)).all())

    def _messages(self, content: Content, rows: list[Any]) -> list[Outgoing]:
        """The dispatcher's messages for queued rows. The text is the broadcast's, the same for every
        row of one channel (and reminder or not): rendered once per step, then addressed per row."""
        rendered: dict[tuple[str, bool], Outgoing] = {}
        out = []
        for row in rows:
            key = (row.channel, row.reminded_at is not None)
            if key not in rendered:
                rendered[key] = render.outgoing(self.settings, content, row.id, row.channel, row.address, key[1])
            out.append(replace(rendered[key], to=row.address, ref=render.ref(row.id)))
        return out

    async def _requeue_lost(self, broadcast_id: int, content: Content) -> None:
        """The in-process queue of a previous process is gone: queue again what it held (the
        dispatcher drops anything that was in fact sent)."""
        async with self.sessions() as db:
            upto = (
                await select_rows(db, select(col(Broadcast.enqueued_upto)).where(col(Broadcast.id) == broadcast_id))
            ).scalar_one()
        after, total = 0, 0
        while True:
            async with self.sessions() as db:
                rows = await self._queued(db, broadcast_id, after, upto)
            if not rows:
                break
            total += await self.outbox.add_many(self._messages(content, rows))
            after = rows[-1].id
        if total:
            log.info("broadcast %d: re-queued %d messages lost with a previous process", broadcast_id, total)

    async def _complete_if_done(self, broadcast_id: int) -> bool:
        """sending → completed once the fan-out is done and nobody is queued. The UPDATE is guarded by
        enqueued_upto: a retry or reminder committed meanwhile lowers it, and then nothing changes."""
        r = BroadcastRecipient
        async with self.sessions() as db:
            upto = (
                await select_rows(
                    db,
                    select(col(Broadcast.enqueued_upto)).where(
                        col(Broadcast.id) == broadcast_id,
                        col(Broadcast.status) == "sending",
                        col(Broadcast.fanout_cursor) >= FANOUT_DONE,
                    ),
                )
            ).scalar_one_or_none()
            if upto is None:
                return False
            waiting = await select_rows(
                db, select(exists().where(col(r.broadcast_id) == broadcast_id, col(r.status) == "queued"))
            )
            if waiting.scalar():
                return False
            done = await db.exec(
                update(Broadcast)
                .where(
                    col(Broadcast.id) == broadcast_id,
                    col(Broadcast.status) == "sending",
                    col(Broadcast.enqueued_upto) == upto,
                )
                .values(status="completed", finished_at=utcnow())
            )
            await db.commit()
        if done.rowcount:
            metrics.BROADCASTS_COMPLETED.inc()
            log.info("broadcast %d: completed", broadcast_id)
            self._resting.pop(broadcast_id, None)
        return bool(done.rowcount)
