"""Turn latency: web-chat turns through the gateway versus direct calls to Rasa's REST webhook.

    .venv/bin/python -m bench.turn_latency [--turns N] [--users 1,20] [--backend sqlite|postgres]

Both paths run against one freshly started Stack, in alternating rounds (the order flips every
round) so machine noise hits both equally. Every simulated user starts a fresh conversation after
each pass through MIX: Rasa slows down as a tracker grows, and real citizens have short chats.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from gateway.config import Settings
from gateway.rasa_env import train
from tests.stack import REDIS_URL, Stack, fresh_database

# Simple turns only: every one is answered in a single step and leaves no form waiting.
MIX = [
    "你好",
    "你能做什么",
    "12路公交车到哪了",
    "12路的首末班车是几点",
    "查水费 1023456789",
    "电影有哪些场次",
    "今天天气怎么样",
    "5路经过哪些站",
    "谢谢",
    "再见",
]
PATHS = ("direct", "gateway")
MAX_RUN_S = 900  # hard stop for the whole measurement, whatever the arguments


class User:
    """One citizen on one path, with a fresh sender/session id for each pass through MIX."""

    def __init__(self, path: str, stack: Stack) -> None:
        self.path, self.stack, self.turns = path, stack, 0
        self.conversation = uuid.uuid4().hex

    def request(self) -> tuple[str, dict]:
        if self.path == "direct" and self.turns and self.turns % len(MIX) == 0:
            self.conversation = uuid.uuid4().hex  # (the gateway path's new session is minted in turn())
        text = MIX[self.turns % len(MIX)]
        self.turns += 1
        if self.path == "direct":
            return f"{self.stack.rasa_url}/webhooks/rest/webhook", {"sender": self.conversation, "message": text}
        body = {"session": self.conversation, "text": text, "id": uuid.uuid4().hex}
        return f"{self.stack.url}/api/webchat/messages", body


async def turn(http: aiohttp.ClientSession, user: User) -> float:
    if user.path != "direct" and user.turns % len(MIX) == 0:  # a fresh web chat session, as the server issues one
        async with http.post(f"{user.stack.url}/api/webchat/sessions") as response:
            user.conversation = (await response.json())["session"]
    url, body = user.request()
    started = time.perf_counter()
    async with http.post(url, json=body) as response:
        payload = await response.json()
    elapsed_ms = (time.perf_counter() - started) * 1000
    replies = payload if user.path == "direct" else payload.get("replies")
    if response.status != 200 or not replies:
        raise RuntimeError(f"{user.path} turn {body} failed: {response.status} {payload}")
    return elapsed_ms


async def run_round(http: aiohttp.ClientSession, users: list[User], budget: int, deadline: float) -> list[float]:
    """`budget` turns shared by all users, each sending its next turn as soon as the last is answered."""
    samples: list[float] = []

    async def worker(user: User) -> None:
        nonlocal budget
        while budget > 0:
            if time.perf_counter() > deadline:
                raise TimeoutError("benchmark exceeded its time limit")
            budget -= 1
            samples.append(await turn(http, user))

    await asyncio.gather(*(worker(u) for u in users))
    return samples


async def measure(stack: Stack, concurrency: int, turns: int, deadline: float) -> dict[str, dict]:
    """Warm up both paths, then measure `turns` per path in alternating rounds."""
    results = {path: {"samples": [], "seconds": 0.0} for path in PATHS}
    limit = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=limit, timeout=aiohttp.ClientTimeout(total=30)) as http:
        for path in PATHS:  # warm-up, not counted: every message once per user
            await run_round(http, [User(path, stack) for _ in range(concurrency)], concurrency * len(MIX), deadline)
        users = {path: [User(path, stack) for _ in range(concurrency)] for path in PATHS}
        round_size = max(concurrency * 3, turns // 10)
        for number in range((turns + round_size - 1) // round_size):
            budget = min(round_size, turns - number * round_size)
            for path in PATHS if number % 2 == 0 else reversed(PATHS):
                started = time.perf_counter()
                results[path]["samples"] += await run_round(http, users[path], budget, deadline)
                results[path]["seconds"] += time.perf_counter() - started
    return results


def summary(samples: list[float], seconds: float) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "turns": len(samples),
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "mean": statistics.fmean(samples),
        "tps": len(samples) / seconds,
    }


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def print_table(rows: list[tuple[str, int, dict]]) -> None:
    header = f"{'path':<8} {'users':>5} {'turns':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8} {'turns/s':>8}"
    print(f"{header} {'gw/dir p50':>10} {'gw/dir p95':>10}")
    direct: dict[int, dict] = {}
    for path, users, s in rows:
        line = f"{path:<8} {users:>5} {s['turns']:>6} " + " ".join(
            f"{s[k]:>8.1f}" for k in ("p50", "p95", "p99", "mean", "tps")
        )
        if path == "direct":
            direct[users] = s
            print(f"{line} {'':>10} {'':>10}")
        else:
            d = direct[users]
            print(f"{line} {s['p50'] / d['p50']:>9.2f}x {s['p95'] / d['p95']:>9.2f}x")
    print("latencies in ms; turns/s = turns / wall time spent in that path's rounds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300, help="measured turns per path per concurrency")
    parser.add_argument("--users", default="1,20", help="comma-separated concurrency levels")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    levels = [int(u) for u in args.users.split(",")]
    if args.turns < 2 or min(levels) < 1:
        parser.error("--turns must be at least 2 and every user count at least 1")

    print(f"date:     {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine:  nproc={len(os.sched_getaffinity(0))}, python {platform.python_version()} ({platform.machine()})")
    print(f"backend:  {args.backend}; {args.turns} measured turns per path per concurrency, {len(MIX)}-message mix")
    model = train(Settings())
    with tempfile.TemporaryDirectory(prefix="bench-turn-latency-") as tmp:
        directory = Path(tmp)
        redis_url = REDIS_URL if args.backend == "postgres" else None
        stack = Stack(args.backend, fresh_database(args.backend, directory), redis_url, directory, model)
        try:
            stack.start()
            stack.wait()
            gateway_pid = stack.processes[2].pid
            print(f"gateway RSS before: {rss_kb(gateway_pid) / 1024:.1f} MiB")
            deadline = time.perf_counter() + MAX_RUN_S
            rows = []
            for users in levels:
                results = asyncio.run(measure(stack, users, args.turns, deadline))
                rows += [(path, users, summary(**results[path])) for path in PATHS]
            print(f"gateway RSS after:  {rss_kb(gateway_pid) / 1024:.1f} MiB\n")
            print_table(rows)
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
