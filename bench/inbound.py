"""Inbound webhooks: signed Twilio SMS webhooks per second through the gateway's webhook path
(signature check + dedupe + durable queue), against a bare aiohttp handler in the same run.

    .venv/bin/python -m bench.inbound [--requests 4000] [--concurrency 32] [--rate 200] [--seconds 10]

Each server runs in its own process (one core), the load generator in this one; requests are signed
before the clock starts, so the client's cost is only HTTP. Backends: the embedded default (in-memory
dedupe and queue) and Redis (claim + XADD to a stream). Nothing but the webhook path is running:
no turn workers consume the queue, so this measures how fast a burst of texts is safely taken in.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web
from twilio.request_validator import RequestValidator

from tests.stack import REDIS_URL, free_port

TOKEN = "bench-twilio-auth-token"
PATH = "/channels/twilio/sms"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


# --- servers (run in a child process) ------------------------------------------------------------


async def _bare(_request: web.Request) -> web.Response:
    await _request.post()  # parse the form like any handler must
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


def serve(kind: str, port: int, redis_url: str | None) -> None:
    from channels.twilio.handler import TwilioChannel
    from gateway.inbound.inbox import InboxEntry, Intake, Seen
    from gateway.outbound.queue import MemoryQueue, RedisStreamQueue
    from gateway.state import create_state

    async def make() -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        if kind == "bare":
            app.router.add_post(PATH, _bare)
            return app
        state = create_state(redis_url)
        prefix = f"citygw-bench-{uuid.uuid4().hex[:8]}"
        queue = (
            RedisStreamQueue(redis_url, prefix=f"{prefix}:in", group="turns", entry_type=InboxEntry)
            if redis_url
            else MemoryQueue()
        )
        intake = Intake(Seen(state, 600), queue, statuses=None)  # type: ignore[arg-type]  # no status callbacks here

        async def cleanup(_app: web.Application) -> None:
            if redis_url:
                client = aioredis.from_url(redis_url)
                await client.delete(*queue.keys)
                await client.aclose()
            await queue.close()
            await state.close()

        app.on_cleanup.append(cleanup)
        app.router.add_routes(TwilioChannel(TOKEN, intake).routes())
        return app

    web.run_app(make(), host="127.0.0.1", port=port, print=None, access_log=None, shutdown_timeout=2)


# --- load ------------------------------------------------------------------------------------


def signed_requests(url: str, count: int) -> list[tuple[dict[str, str], dict[str, str]]]:
    validator, out = RequestValidator(TOKEN), []
    for i in range(count):
        form = {
            "MessageSid": f"SM{secrets.token_hex(16)}",
            "AccountSid": "AC" + "0" * 32,
            "From": f"+86139{i % 10**8:08d}",
            "To": "+8610690000123",
            "Body": "12路公交车到哪了",
            "NumMedia": "0",
        }
        out.append((form, {"X-Twilio-Signature": validator.compute_signature(url, form)}))
    return out


async def burst(url: str, requests: list, concurrency: int) -> float:
    """Requests per second with `concurrency` requests in flight."""
    pending = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            for form, headers in pending:
                async with http.post(url, data=form, headers=headers) as response:
                    assert response.status == 200, await response.text()
                    await response.read()

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return len(requests) / (time.perf_counter() - start)


async def fixed_rate(url: str, requests: list, rate: float) -> list[float]:
    """Latencies (ms) of requests started at a fixed rate (open loop: a slow server does not slow the load)."""
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def one(form: dict, headers: dict) -> None:
            start = time.perf_counter()
            async with http.post(url, data=form, headers=headers) as response:
                await response.read()
                assert response.status == 200
            latencies.append((time.perf_counter() - start) * 1000)

        tasks, t0 = [], time.perf_counter()
        for i, (form, headers) in enumerate(requests):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(form, headers)))
        await asyncio.gather(*tasks)
    return latencies


def start(kind: str, redis_url: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, "-m", "bench.inbound", "--serve", kind, "--port", str(port)]
    if redis_url:
        args += ["--redis", redis_url]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}{PATH}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{kind} server did not start: {proc.stderr.read().decode()[-2000:]}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def main(args: argparse.Namespace) -> None:
    variants = [
        ("bare aiohttp handler", "bare", None),
        ("webhook, embedded (memory)", "gateway", None),
        ("webhook, Redis", "gateway", REDIS_URL),
    ]
    servers = [start(kind, redis_url) for _, kind, redis_url in variants]
    try:
        for _, url in servers:
            await burst(url, signed_requests(url, 300), args.concurrency)  # warm-up
        # Rounds alternate between the servers so that noise on a shared machine hits all of them.
        rates: list[list[float]] = [[] for _ in variants]
        for _ in range(args.rounds):
            for index, (_, url) in enumerate(servers):
                rates[index].append(await burst(url, signed_requests(url, args.requests), args.concurrency))
        rows = []
        for (label, _, _), (_, url), runs in zip(variants, servers, rates, strict=True):
            latencies = await fixed_rate(url, signed_requests(url, int(args.rate * args.seconds)), args.rate)
            rows.append((label, statistics.median(runs), pct(latencies, 0.5), pct(latencies, 0.99)))
    finally:
        for proc, _ in servers:
            proc.send_signal(signal.SIGINT)
        for proc, _ in servers:
            proc.wait(30)
    bare = rows[0][1]
    print(f"\nInbound SMS webhooks ({platform.machine()}, {os.cpu_count()} cores, server in one process)")
    print(f"burst: {args.requests} requests × {args.rounds} rounds, {args.concurrency} in flight (median); ", end="")
    print(f"fixed rate: {args.rate:.0f}/s for {args.seconds:.0f} s")
    print("| path | requests/s | vs bare | p50 ms @ rate | p99 ms @ rate |")
    print("|---|---|---|---|---|")
    for label, rps, p50, p99 in rows:
        print(f"| {label} | {rps:,.0f} | {rps / bare:.2f}× | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=["bare", "gateway"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parsed = parser.parse_args()
    if parsed.serve:
        serve(parsed.serve, parsed.port, parsed.redis)
    else:
        asyncio.run(main(parsed))
