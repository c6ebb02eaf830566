"""What the local provider servers share: serving on 127.0.0.1 inside `async with`, paged message lists
and JSON bodies for their control endpoints, and running alone as a process until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any, Protocol, Self

from aiohttp import web


class LocalServer:
    """Serves `self.app` on 127.0.0.1:`self.port` (0 picks a free port; `port` is the real one once started).

    No access log: paths and queries carry tokens, openids and push endpoints, and a benchmark's requests
    would only slow it down. handler_cancellation: a client that gave up (timeout tests) does not keep a
    slow handler alive."""

    app: web.Application
    port: int
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Self:
        self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- what the control endpoints share ----------------------------------------------------------

    messages: list[Any]  # what the server accepted; each has as_dict()

    @staticmethod
    async def _control_body(request: web.Request) -> Any:
        try:
            return await request.json() if request.can_read_body else {}
        except ValueError:
            raise web.HTTPBadRequest(text="body must be JSON") from None

    async def _c_messages(self, request: web.Request) -> web.Response:
        # Paged so that a benchmark's driver can poll without copying every message each time.
        try:
            since = int(request.query.get("since", 0))
            limit = int(request.query.get("limit", 1000))
        except ValueError:
            raise web.HTTPBadRequest(text="since and limit are integers") from None
        page = self.messages[since : since + limit]
        return web.json_response({"messages": [m.as_dict() for m in page], "next": since + len(page)})


class Served(Protocol):
    @property
    def url(self) -> str: ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(self, *exc: object) -> None: ...


async def serve(server: Served, ready: str = "{url}") -> None:
    """Run until SIGINT or SIGTERM. The first line printed is `ready` (with {url} filled in): a parent
    process waits for it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(signum, stop.set)
    async with server:
        print(ready.format(url=server.url), flush=True)
        await stop.wait()
