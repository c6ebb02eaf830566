"""The gateway's own wiring: Messaging.start_workers runs a BroadcastRunner next to the dispatchers,
and a broadcast goes out through the senders the settings configure; close() stops it all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gateway.app import core
from gateway.broadcast.runner import BroadcastRunner
from providers.twilio_api import LocalTwilio
from providers.wechat_api import LocalWeChat

from .conftest import World, open_world
from .harness import APP_ID, SECRET, SID, TOKEN
from .test_delivery import reachable_by_sms
from .test_service import create, reload

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:twilio")


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory) -> AsyncIterator[World]:
    """The embedded deployment only: SQLite, in-process queue and state."""
    async with open_world("sqlite", tmp_path_factory.mktemp("bc-wiring")) as w:
        yield w


async def test_the_gateway_runs_broadcasts_in_process(world: World):
    people = reachable_by_sms(world, 5, community="c031")
    async with LocalTwilio(SID, TOKEN) as twilio, LocalWeChat(APP_ID, SECRET) as wechat:
        settings = world.settings(
            twilio_account_sid=SID,
            twilio_auth_token=TOKEN,
            twilio_api_base=twilio.url,
            wechat_app_id=APP_ID,
            wechat_app_secret=SECRET,
            wechat_api_base=wechat.url,
        )
        async with core(settings) as c:
            c.messaging.start_workers()
            runners = [r for r in c.messaging._runners if isinstance(r, BroadcastRunner)]
            assert len(runners) == 1 and runners[0].durable_queue is False
            notice = await create(world, audience={"type": "list", "phones": [p.phone for p in people]})
            for _ in range(200):
                if (await reload(world, notice.id)).status == "completed":
                    break
                await asyncio.sleep(0.05)
        assert (await reload(world, notice.id)).status == "completed"
        assert sorted(m.to for m in twilio.messages) == sorted(p.phone for p in people)
