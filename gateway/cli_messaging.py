"""CLI commands for the messaging side: dispatch workers, the WeChat menu, and a demo phone."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator

from gateway.config import Settings
from providers.phone import PHONES


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Dispatch and turn workers in their own process. They share the queues through Redis; without
    Redis the queues live inside the gateway process, which runs its own workers."""
    from gateway.app import core

    if not settings.redis_url:
        print(
            "citygw worker needs CITYGW_REDIS_URL: without Redis the gateway runs its workers itself.", file=sys.stderr
        )
        return 2

    async def main() -> None:
        async with core(settings) as c:
            c.messaging.start_workers(args.dispatchers, args.turns)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            print(f"worker: {args.dispatchers} dispatcher(s), {args.turns} turn runner(s); Ctrl-C stops", flush=True)
            async with worker_metrics(settings, c, args.metrics_port):
                await stop.wait()

    asyncio.run(main())
    return 0


@contextlib.asynccontextmanager
async def worker_metrics(settings: Settings, c, port: int | None) -> AsyncIterator[None]:
    """The worker's own GET /metrics (its sends and turns; the same token rule as the gateway's)."""
    if port is None:
        yield
        return
    from aiohttp import web

    from gateway.scrape import Scrape

    app = web.Application()
    queues = {"outbound": c.messaging.outbox, "inbox": c.messaging.inbox}
    app.router.add_routes(Scrape(settings.metrics_token, c.bridge, queues, c.sessions).routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, port).start()
    print(f"worker: metrics on http://{settings.host}:{port}/metrics", flush=True)
    try:
        yield
    finally:
        await runner.cleanup()


def wechat_menu(families: list[tuple[str, str]]) -> dict:
    """The Official Account's custom menu: WeChat allows 3 top-level buttons of at most 5 each, so
    the families fill the first two and the third holds the rest, the full list and phone binding."""
    from intents.runtime import button

    items = [
        {"type": "click", "name": name, "key": button(name, "help", family=name)["payload"]} for name, _ in families
    ]
    rest = [*items[10:13], {"type": "click", "name": "全部服务", "key": "/help"}]
    rest.append({"type": "click", "name": "绑定手机", "key": "bind"})
    return {
        "button": [
            {"name": "办事服务", "sub_button": items[:5]},
            {"name": "生活服务", "sub_button": items[5:10]},
            {"name": "更多", "sub_button": rest[:5]},
        ]
    }


def cmd_wechat_menu(args: argparse.Namespace, settings: Settings) -> int:
    from channels.wechat.api import WeChatApi
    from gateway.state import create_state
    from intents.services import catalogue

    menu = wechat_menu([(f.name, f.id) for f in catalogue().families])
    app_id, app_secret = settings.wechat_app_id, settings.wechat_app_secret
    if args.dry_run or not (app_id and app_secret):
        import json

        print(json.dumps(menu, ensure_ascii=False, indent=2))
        return 0 if args.dry_run else 2

    async def create() -> None:
        state = create_state(settings.redis_url, settings.queue_prefix)
        api = WeChatApi(app_id, app_secret, state, settings.wechat_api_base)
        try:
            await api.create_menu(menu)
        finally:
            await api.close()
            await state.close()

    asyncio.run(create())
    print("menu created: " + " | ".join(b["name"] for b in menu["button"]))
    return 0


def cmd_phone(args: argparse.Namespace, settings: Settings) -> int:
    """Text the running demo as a citizen would, through the real webhook, and print the answer the
    local provider was asked to deliver."""
    import aiohttp

    from gateway.demo import TWILIO, WECHAT
    from providers.phone import PHONES, wait_for_replies

    phone, base = PHONES[args.channel], args.url.rstrip("/")
    sender = args.sender or phone.default_sender

    async def main() -> int:
        async with aiohttp.ClientSession() as http:
            provider = phone.replies_url(settings)
            seen = await _count(http, provider, phone.replies_field, sender)
            async with http.post(**phone.request(base, settings, {**TWILIO, **WECHAT}, sender, args.text)) as response:
                if response.status != 200:
                    print(f"webhook refused: {response.status} {await response.text()}", file=sys.stderr)
                    return 1
            replies = await wait_for_replies(http, provider, phone.replies_field, sender, seen)
            for reply in replies:
                print(phone.show(reply))
            if not replies:
                print("（还没有回复：Rasa 可能仍在启动）")
            return 0

    return asyncio.run(main())


async def _count(http, url: str, field: str, address: str) -> int:
    with contextlib.suppress(Exception):
        async with http.get(url) as response:
            data = await response.json()
        rows = data.get("messages", data) if isinstance(data, dict) else data
        return sum(1 for m in rows if m.get(field) == address)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run dispatch and turn workers (needs Redis)")
    worker.add_argument("--dispatchers", type=int, default=1)
    worker.add_argument("--turns", type=int, default=1)
    worker.add_argument("--metrics-port", type=int, help="serve this worker's GET /metrics on CITYGW_HOST:PORT")
    worker.set_defaults(func=cmd_worker)
    menu = sub.add_parser("wechat-menu", help="create the WeChat custom menu from the catalogue's families")
    menu.add_argument("--dry-run", action="store_true", help="print the menu instead of creating it")
    menu.set_defaults(func=cmd_wechat_menu)
    phone = sub.add_parser("phone", help="demo: text the running gateway by SMS or WeChat as a citizen")
    phone.add_argument("channel", choices=sorted(PHONES))
    phone.add_argument("text")
    phone.add_argument("--sender", default=None, help="phone number (sms) or openid (wechat)")
    phone.add_argument("--url", default="http://127.0.0.1:8080")
    phone.set_defaults(func=cmd_phone)
