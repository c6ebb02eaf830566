"""A city-wide emergency broadcast: 250,000 residents through fan-out and dispatch to the local
Twilio-compatible and WeChat servers, with the provider rate limit lifted.

    .venv/bin/python -m bench.broadcast [--residents 250000] [--workers 2] [--concurrency 64] [--clean-only]

Two runs on one PostgreSQL database and Redis: a clean run, and a run whose workers are SIGKILLed
twice (at about a third and two thirds of the way) and restarted. Each reports total time, messages
per second, the largest worker peak RSS, and what the providers received: every reachable resident exactly
once (duplicates at the provider are counted separately from the fan-out's own, which must be 0).
A raw Redis pipeline writing the same number of stream entries shows how close to the storage
limit the fan-out is.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis
from sqlalchemy import func
from sqlmodel import Session, select

from gateway.broadcast import service
from gateway.config import REPO_ROOT, Settings
from gateway.db.engine import async_engine, session_factory, sync_engine
from gateway.db.models import Broadcast, BroadcastRecipient, StaffUser
from gateway.db.people import seed_people
from gateway.demo import TWILIO, WECHAT
from intents.city.pack import load_pack
from tests.stack import REDIS_URL, drop_database, free_port, fresh_database


def rss_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


async def raw_redis_baseline(count: int, fields: dict[str, str]) -> float:
    """Seconds for XADD of `count` entries in pipelines of 1,000: the storage limit."""
    client = aioredis.from_url(REDIS_URL)
    key = f"bench-raw-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    for offset in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(1000, count - offset)):
            pipe.xadd(key, fields)
        await pipe.execute()
    elapsed = time.perf_counter() - start
    await client.delete(key)
    await client.aclose()
    return elapsed


async def provider_counts(twilio_url: str, wechat_url: str) -> Counter:
    counts: Counter = Counter()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{twilio_url}/_control/messages", params={"limit": 10_000_000}) as r:
            counts.update(m["to"] for m in (await r.json())["messages"])
        since = 0
        while True:
            async with http.get(f"{wechat_url}/_control/messages", params={"since": since, "limit": 50_000}) as r:
                page = await r.json()
            counts.update(m["touser"] for m in page["messages"])
            if not page["messages"] or page.get("next") is None:
                break
            since = page["next"]
        await http.post(f"{twilio_url}/_control/reset")
        await http.post(f"{wechat_url}/_control/reset")
    return counts


def start_workers(count: int, env: dict, log: Path) -> list[subprocess.Popen]:
    return [spawn(["-m", "gateway.cli", "worker"], env, log) for _ in range(count)]


async def run_broadcast(url: str, settings: Settings, env: dict, log: Path, kills: int, workers: int) -> dict:
    engine = async_engine(url)
    sessions = session_factory(engine)
    async with sessions() as db:
        creator = (await db.exec(select(StaffUser).where(StaffUser.username == "bench-broadcaster"))).one()
        approver = (await db.exec(select(StaffUser).where(StaffUser.username == "bench-approver"))).one()
        broadcast, _ = await service.create(
            db,
            settings,
            creator,
            kind="emergency",
            title="暴雨红色预警",
            body="预计今晚有特大暴雨，请减少外出，远离低洼地带。",
            audience={"type": "all"},
            idempotency_key=uuid.uuid4().hex,
        )
        broadcast_id = broadcast.id
    running = start_workers(workers, env, log)
    start = time.perf_counter()
    async with sessions() as db:
        await service.approve(db, approver, broadcast_id)
    peak, killed_at, total = 0.0, [], None
    while True:
        await asyncio.sleep(0.5)
        peak = max(peak, *(rss_peak_mib(worker.pid) for worker in running))
        async with sessions() as db:
            b = await db.get(Broadcast, broadcast_id)
            await db.refresh(b)
            total = b.recipient_total
            done = (
                await db.exec(
                    select(func.count())
                    .select_from(BroadcastRecipient)
                    .where(BroadcastRecipient.broadcast_id == broadcast_id, BroadcastRecipient.status != "queued")
                )
            ).one()
        if b.status == "completed":
            break
        fraction = done / max(total or 1, 1)
        if len(killed_at) < kills and total and fraction > (len(killed_at) + 1) / (kills + 1):
            for worker in running:
                worker.kill()  # SIGKILL: no clean-up, pending entries stay in the stream
                worker.wait()
            killed_at.append(round(fraction * 100))
            running = start_workers(workers, env, log)
    elapsed = time.perf_counter() - start
    peak = max(peak, *(rss_peak_mib(worker.pid) for worker in running))
    for worker in running:
        worker.send_signal(signal.SIGTERM)
    for worker in running:
        worker.wait(60)
    async with sessions() as db:
        rows = (
            await db.exec(
                select(BroadcastRecipient.address, BroadcastRecipient.status).where(
                    BroadcastRecipient.broadcast_id == broadcast_id
                )
            )
        ).all()
    await engine.dispose()
    return {"id": broadcast_id, "seconds": elapsed, "peak_mib": peak, "killed_at": killed_at, "rows": rows}


def report(label: str, result: dict, counts: Counter) -> tuple:
    sent = [a for a, s in result["rows"] if s in ("sent", "delivered")]
    rows_per_address = Counter(a for a, _ in result["rows"])
    missing = sum(1 for a in sent if counts[a] == 0)
    provider_dupes = sum(n - 1 for n in counts.values() if n > 1)
    fanout_dupes = sum(n - 1 for n in rows_per_address.values() if n > 1)
    rate = len(sent) / result["seconds"]
    return (
        label,
        len(result["rows"]),
        len(sent),
        result["seconds"],
        rate,
        result["peak_mib"],
        missing,
        fanout_dupes,
        provider_dupes,
        result["killed_at"],
    )


async def main(args: argparse.Namespace) -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-broadcast-"))
    url = fresh_database("postgres", directory)
    try:
        t0 = time.perf_counter()
        pack = load_pack()
        seed_people(url, [c.id for c in pack.communities], args.residents, with_schools=False)
        seeded = time.perf_counter() - t0
        with Session(sync_engine(url)) as db:
            db.add(StaffUser(username="bench-broadcaster", display_name="基准", password_hash="-", role="broadcaster"))
            db.add(StaffUser(username="bench-approver", display_name="基准", password_hash="-", role="approver"))
            db.commit()
        twilio_port, wechat_port = free_port(), free_port()
        twilio_url, wechat_url = f"http://127.0.0.1:{twilio_port}", f"http://127.0.0.1:{wechat_port}"
        prefix = f"citygw-bench-{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "CITYGW_DATABASE_URL": url,
            "CITYGW_REDIS_URL": REDIS_URL,
            "CITYGW_QUEUE_PREFIX": prefix,
            "CITYGW_TWILIO_API_BASE": twilio_url,
            "CITYGW_WECHAT_API_BASE": wechat_url,
            "CITYGW_SMS_RATE": "0",
            "CITYGW_WECHAT_RATE": "0",
            "CITYGW_DISPATCH_CONCURRENCY": str(args.concurrency),
            "CITYGW_BROADCAST_BATCH": "2000",
            "CITYGW_LOG_LEVEL": "WARNING",
            **{f"CITYGW_{k.upper()}": v for k, v in {**TWILIO, **WECHAT}.items()},
        }
        providers = [
            spawn(
                [
                    "-m",
                    "providers.twilio_api",
                    "--port",
                    str(twilio_port),
                    "--account-sid",
                    TWILIO["twilio_account_sid"],
                    "--auth-token",
                    TWILIO["twilio_auth_token"],
                ],
                env,
                directory / "twilio.log",
            ),
            spawn(
                [
                    "-m",
                    "providers.wechat_api",
                    "--port",
                    str(wechat_port),
                    "--app-id",
                    WECHAT["wechat_app_id"],
                    "--secret",
                    WECHAT["wechat_app_secret"],
                ],
                env,
                directory / "wechat.log",
            ),
        ]
        try:
            await wait_http(f"{twilio_url}/_control/stats")
            await wait_http(f"{wechat_url}/_control/state")
            settings = Settings(database_url=url, redis_url=REDIS_URL, queue_prefix=prefix)
            rows = []
            runs = [("clean run", 0), ("workers killed twice", 2)][: 1 if args.clean_only else 2]
            for label, kills in runs:
                result = await run_broadcast(url, settings, env, directory / "worker.log", kills, args.workers)
                rows.append(report(label, result, await provider_counts(twilio_url, wechat_url)))
            raw = await raw_redis_baseline(
                rows[0][1],
                {
                    "channel": "sms",
                    "to": "+8613900000000",
                    "text": "x" * 40,
                    "ref": "recipient:1",
                    "priority": "emergency",
                },
            )
        finally:
            for proc in providers:
                proc.terminate()
                proc.wait(10)
    finally:
        drop_database(url)
    print(
        f"\nEmergency broadcast to all residents ({os.cpu_count()} cores; PostgreSQL + Redis; {args.workers} worker process(es),"
        f" dispatch concurrency {args.concurrency} each; provider rate limit lifted)"
    )
    print(f"seeding {args.residents:,} residents: {seeded:.0f} s")
    print(
        "| run | recipients | sent | total s | msgs/s | worker peak RSS MiB | missing | fan-out dupes | provider dupes | killed at % |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, n, sent, seconds, rate, peak, missing, fdupes, pdupes, killed in rows:
        print(
            f"| {label} | {n:,} | {sent:,} | {seconds:.0f} | {rate:,.0f} | {peak:.0f} | {missing} | {fdupes} | {pdupes} |"
            f" {', '.join(map(str, killed)) or '-'} |"
        )
    print(
        f"raw Redis pipeline, {rows[0][1]:,} XADDs: {raw:.1f} s ({rows[0][1] / raw:,.0f}/s); "
        f"the clean fan-out + dispatch took {rows[0][3] / raw:.0f}× as long"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=250_000)
    parser.add_argument("--concurrency", type=int, default=64, help="sends in flight per worker process")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--clean-only", action="store_true", help="skip the run with killed workers")
    asyncio.run(main(parser.parse_args()))
