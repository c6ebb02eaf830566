"""A dispatch worker in a process of its own, for the crash test.

It consumes from Redis with one slot, sends through a sender that never returns for refs starting with
"hang", and reports each step on stdout so the test knows the moment to SIGKILL it mid-send.

    python -m gateway.outbound.tests.worker_proc --redis URL --prefix PREFIX [--visibility-ms N] [--send-timeout-s S]
"""

from __future__ import annotations

import argparse
import asyncio

from channels.base import Outgoing, SendResult
from gateway.outbound.dispatcher import Dispatcher
from gateway.outbound.queue import RedisStreamQueue


def say(line: str) -> None:
    print(line, flush=True)


class HangingSender:
    channel = "sms"

    async def send(self, message: Outgoing) -> SendResult:
        say(f"SENDING {message.ref}")
        if message.ref.startswith("hang"):
            await asyncio.Event().wait()  # the provider call that never comes back
        return SendResult(provider_id=f"SM-worker-{message.ref}")

    async def close(self) -> None:
        return None


class PrintingLog:
    """Knows nothing of what other processes sent: every message looks due, so any redelivery shows."""

    async def should_send(self, ref: str) -> bool:
        return True

    async def sent(self, ref: str, result: SendResult, message: Outgoing) -> None:
        say(f"SENT {ref}")

    async def retrying(self, ref: str, attempt: int, reason: str, code: str | None, delay_s: float) -> None:
        say(f"RETRYING {ref}")

    async def failed(self, ref: str, kind: str, reason: str, code: str | None) -> None:
        say(f"FAILED {ref}")

    async def fallback(self, message: Outgoing, kind: str, reason: str) -> Outgoing | None:
        return None


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--visibility-ms", type=int, default=3000)
    # long enough for the test to kill the worker mid-send; its claim on the ref lasts twice as long
    parser.add_argument("--send-timeout-s", type=float, default=0.8)
    args = parser.parse_args()
    queue = RedisStreamQueue(args.redis, prefix=args.prefix)
    dispatcher = Dispatcher(
        queue,
        {"sms": HangingSender()},
        PrintingLog(),
        consumer="doomed-worker",
        concurrency=1,  # one at a time, in queue order
        visibility_ms=args.visibility_ms,
        send_timeout_s=args.send_timeout_s,
        block_ms=100,
        maintenance_s=0.1,
    )
    say("READY")
    await dispatcher.run()


if __name__ == "__main__":
    asyncio.run(main())
