"""Compare NLU pipelines on the held-out set: the fast one (logistic regression, bot/config.yml) and
DIET (bot/config-diet.yml). For each: training time, held-out accuracy / macro-F1 / entity F1 /
out-of-scope rejection, and parse latency. Run: python -m bench.nlu_compare"""

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

CONFIGS = {"logistic regression": "config.yml", "DIET (50 epochs)": "config-diet.yml"}


async def measure(rasa_url: str) -> tuple[object, list[float]]:
    async with aiohttp.ClientSession() as http:

        async def parse(text: str) -> dict:
            async with http.post(f"{rasa_url}/model/parse", json={"text": text}) as response:
                return await response.json()

        report = await evaluate(parse)
        texts = [e["text"] for e in load_heldout()["examples"]][:200]
        latencies = []
        for text in texts:  # one at a time: latency, not throughput
            started = time.perf_counter()
            await parse(text)
            latencies.append((time.perf_counter() - started) * 1000)
    return report, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--retrain", action="store_true", help="train even when a model is cached (to time it)")
    args = parser.parse_args()
    settings = Settings()
    rows = []
    for name, config in CONFIGS.items():
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
            report, latencies = asyncio.run(measure(f"http://127.0.0.1:{port}"))
        finally:
            stop(proc)
        p50 = statistics.median(latencies)
        p95 = statistics.quantiles(latencies, n=20)[18]
        rows.append((name, train_s, load_s, report, p50, p95))
        print(f"\n== {name} ==\n{report.table()}", flush=True)
    print(
        f"\n{'pipeline':<22}{'train s':>9}{'load s':>8}{'accuracy':>10}{'macro-F1':>10}{'entity F1':>10}{'OOS rej.':>10}"
        f"{'p50 ms':>8}{'p95 ms':>8}"
    )
    for name, train_s, load_s, r, p50, p95 in rows:
        trained = "cached" if train_s is None else f"{train_s:.0f}"
        print(
            f"{name:<22}{trained:>9}{load_s:>8.0f}{r.accuracy:>10.1%}{r.macro_f1:>10.3f}{r.entity_f1:>10.3f}"
            f"{r.oos_rejection:>10.1%}{p50:>8.1f}{p95:>8.1f}"
        )


if __name__ == "__main__":
    main()
