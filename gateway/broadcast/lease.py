"""A lease on one broadcast's fan-out, in the shared state (Redis across processes): one worker fans
a broadcast out at a time; a crashed worker's lease lapses after ttl_s and another takes over.

The lease saves work, it does not guard correctness: every fan-out step is a conditional UPDATE of
the broadcast's cursor, so two holders (a worker frozen past its lease) cannot both advance it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from gateway.state import StateStore

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, state: StateStore, key: str, ttl_s: int) -> None:
        self.state, self.key, self.ttl_s = state, key, max(1, ttl_s)
        self.token = secrets.token_hex(8)
        self.held = False
        self._renewer: asyncio.Task[None] | None = None

    async def acquire(self) -> bool:
        if not await self.state.claim(self.key, self.ttl_s):
            return False
        # the claim stores a placeholder; our token lets renew and release check they still own it
        await self.state.set_json(self.key, self.token, self.ttl_s)
        self.held = True
        self._renewer = asyncio.create_task(self._renew(), name=f"lease-{self.key}")
        return True

    async def _renew(self) -> None:
        while self.held:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                if await self.state.get_json(self.key) != self.token:
                    log.warning("lost the lease %s (another worker holds it now)", self.key)
                    self.held = False
                    return
                await self.state.set_json(self.key, self.token, self.ttl_s)
            except Exception as exc:  # state outage: keep trying; the cursor guards correctness
                log.warning("could not renew the lease %s (%s)", self.key, type(exc).__name__)

    async def release(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if self.held:
            self.held = False
            with contextlib.suppress(Exception):
                if await self.state.get_json(self.key) == self.token:
                    await self.state.release(self.key)
