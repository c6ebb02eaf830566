"""Compare NLU pipelines on the held-out sets: the chosen one (bot/config.yml) and the alternatives
(bot/config-*.yml). For each: training time, accuracy / macro-F1 / entity F1 / out-of-scope rejection on
the earlier batches and on the new batch (each on its own), parse latency and Rasa's memory.
Run: python -m bench.nlu_compare [--only NAME ...] [--retrain]"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from gateway.config import Settings
from gateway.rasa_env import model_path, start_rasa, stop, train, wait_http
from intents.evaluation import evaluate, load_heldout
from tests.stack import free_port

CONFIGS = {
    "LR + e5 (chosen)": "config.yml",
    "LR, n-grams only": "config-ngrams.yml",
    "DIET (50 epochs)": "config-diet.yml",
}


def rss_mib(pid: int) -> float:
    """Resident memory of the Rasa server process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure(rasa_url: str) -> tuple[dict[str, object], list[float]]:
    async with aiohttp.ClientSession() as http:

        async def parse(text: str) -> dict:
            async with http.post(f"{rasa_url}/model/parse", json={"text": text}) as response:
                return await response.json()

        reports = {batch: await evaluate(parse, load_heldout(batch=batch)) for batch in ("old", "new")}
        texts = [e["text"] for e in load_heldout()["examples"]][:200]
        latencies = []
        for text in texts:  # one at a time: latency, not throughput
            started = time.perf_counter()
            await parse(text)
            latencies.append((time.perf_counter() - started) * 1000)
    return reports, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--retrain", action="store_true", help="train even when a model is cached (to time it)")
    parser.add_argument("--only", nargs="*", help="pipeline names (or config files) to run")
    args = parser.parse_args()
    settings = Settings()
    rows = []
    for name, config in CONFIGS.items():
        if args.only and name not in args.only and config not in args.only:
            continue
        cached = model_path(settings, config).exists()
        started = time.perf_counter()
        model = train(settings, force=args.retrain, config=config)
        train_s = None if cached and not args.retrain else time.perf_counter() - started
        port = free_port()
        log = Path(tempfile.mkdtemp()) / "rasa.log"
        proc = start_rasa(settings, model, port, free_port(), log)
        try:
            started = time.perf_counter()
            wait_http(f"http://127.0.0.1:{port}/status", 300, proc, log)
            load_s = time.perf_counter() - started
            reports, latencies = asyncio.run(measure(f"http://127.0.0.1:{port}"))
            rss = rss_mib(proc.pid)
        finally:
            stop(proc)
        p50 = statistics.median(latencies)
        p95 = statistics.quantiles(latencies, n=20)[18]
        rows.append((name, train_s, load_s, reports, p50, p95, rss))
        for batch, report in reports.items():
            print(f"\n== {name}, {batch} batches ==\n{report.table()}", flush=True)
    print(
        "\n| pipeline | train s | load s | old: accuracy / OOS rejected | new: accuracy / OOS rejected "
        "| entity F1 old / new | parse p50 / p95 ms | Rasa RSS MiB |\n|---|---|---|---|---|---|---|---|"
    )
    for name, train_s, load_s, r, p50, p95, rss in rows:
        trained = "cached" if train_s is None else f"{train_s:.0f}"
        old, new = r["old"], r["new"]
        print(
            f"| {name} | {trained} | {load_s:.0f} | {old.accuracy:.1%} / {old.oos_rejection:.1%} "
            f"| {new.accuracy:.1%} / {new.oos_rejection:.1%} | {old.entity_f1:.3f} / {new.entity_f1:.3f} "
            f"| {p50:.1f} / {p95:.1f} | {rss:.0f} |"
        )


if __name__ == "__main__":
    main()
