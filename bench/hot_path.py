"""Which modules of gateway/ and channels/ one SMS reply passes through, from the Twilio webhook to the
reply reaching the (local) provider, with the bot's turn answered by a stand-in Rasa: a profiler hook in
the gateway's process records every function of ours that runs. Prints the modules in first-call order.

    .venv/bin/python -m bench.hot_path
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from gateway.app import create_app
from gateway.config import Settings
from providers.twilio_api import LocalTwilio
from tests.fake_rasa import FakeRasa, make_template_database
from tests.stack import free_port

SID, TOKEN, FROM, CITIZEN = "AC" + "0" * 31 + "9", "hot-path-token", "+8610690000123", "+8613912345678"
OURS = ("gateway.", "channels.")
# storage and plumbing, and the broadcast runner polling in the background (not on this path)
SKIP = ("gateway.db.", "gateway.state", "gateway.logs", "gateway.config", "gateway.batch", "gateway.broadcast.")


def _tracer(seen: dict[str, None]) -> Any:
    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            if module.startswith(OURS) and not module.startswith(SKIP):
                seen.setdefault(module)

    return profile


async def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="hot-path-"))
    template = make_template_database(directory)
    port = free_port()
    rasa = FakeRasa()
    await rasa.start()
    async with LocalTwilio(SID, TOKEN) as twilio:
        settings = Settings(
            database_url=f"sqlite:///{template}",
            redis_url=None,
            rasa_url=rasa.url,
            twilio_account_sid=SID,
            twilio_auth_token=TOKEN,
            twilio_from=FROM,
            twilio_api_base=twilio.url,
            public_base_url=f"http://127.0.0.1:{port}",
            rate_limit_per_minute=1000,
        )
        server = TestServer(create_app(settings), host="127.0.0.1", port=port)
        await server.start_server()
        url = f"http://127.0.0.1:{port}/channels/twilio/sms"
        seen: dict[str, None] = {}
        try:
            async with aiohttp.ClientSession() as http:
                for n, trace in ((1, False), (2, True)):  # the first warms caches and connections
                    form = {"MessageSid": f"SM{n:032x}", "From": CITIZEN, "To": FROM, "Body": "12路到哪了"}
                    signature = RequestValidator(TOKEN).compute_signature(url, form)
                    sys.setprofile(_tracer(seen) if trace else None)
                    async with http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response:
                        assert response.status == 200, await response.text()
                    deadline = time.monotonic() + 10
                    while len(twilio.messages) < n:
                        assert time.monotonic() < deadline, "no reply reached the provider"
                        await asyncio.sleep(0.01)
                    sys.setprofile(None)
        finally:
            sys.setprofile(None)
            await server.close()
            await rasa.stop()
    print(f"{len(seen)} modules of gateway/ and channels/ on one SMS reply (storage and logging not counted):")
    for module in seen:
        print(f"  {module}")


if __name__ == "__main__":
    asyncio.run(main())
