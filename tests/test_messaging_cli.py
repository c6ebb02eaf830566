"""The messaging CLI: the WeChat menu built from the catalogue, and `citygw worker` delivering what
another process queued (the multi-process deployment: gateway and workers share Redis)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from asyncio.subprocess import PIPE, STDOUT

import redis.asyncio as aioredis

from channels.base import Outgoing
from channels.wechat.api import WeChatApi
from gateway.cli_messaging import wechat_menu
from gateway.config import REPO_ROOT
from gateway.db.migrate import upgrade
from gateway.outbound.queue import RedisStreamQueue
from gateway.state import MemoryState
from intents.services import catalogue
from providers.twilio_api import LocalTwilio
from providers.wechat_api import LocalWeChat, validate_menu
from tests.stack import REDIS_URL

FAMILIES = [(f.name, f.id) for f in catalogue().families]


def test_the_menu_fits_wechats_rules_and_reaches_every_family():
    menu = wechat_menu(FAMILIES)
    validate_menu(menu)  # raises with WeChat's errcode on a rule it breaks
    keys = [b["key"] for top in menu["button"] for b in top["sub_button"]]
    for name, _ in FAMILIES:
        assert any(name in key for key in keys), name
    assert "bind" in keys and "/help" in keys


async def test_the_menu_is_created_through_the_wechat_api():
    async with LocalWeChat("wxmenu0000000001", "menu-secret") as server:
        api = WeChatApi("wxmenu0000000001", "menu-secret", MemoryState(), server.url)
        try:
            await api.create_menu(wechat_menu(FAMILIES))
        finally:
            await api.close()
        assert [b["name"] for b in server.menu["button"]] == ["办事服务", "生活服务", "更多"]


async def test_a_worker_process_delivers_what_the_gateway_queued(tmp_path):
    sid, token = "AC" + "7" * 32, "worker-test-token"
    database = f"sqlite:///{tmp_path / 'worker.db'}"
    upgrade(database)
    prefix = f"citygw-test-{uuid.uuid4().hex[:8]}"
    async with LocalTwilio(sid, token) as twilio:
        env = {
            **os.environ,
            "CITYGW_DATABASE_URL": database,
            "CITYGW_REDIS_URL": REDIS_URL,
            "CITYGW_QUEUE_PREFIX": prefix,
            "CITYGW_TWILIO_ACCOUNT_SID": sid,
            "CITYGW_TWILIO_AUTH_TOKEN": token,
            "CITYGW_TWILIO_API_BASE": twilio.url,
        }
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "worker", cwd=REPO_ROOT, env=env, stdout=PIPE, stderr=STDOUT
        )
        queue = RedisStreamQueue(REDIS_URL, prefix=f"{prefix}:out")
        try:
            await queue.add(
                Outgoing(channel="sms", to="+8613900009999", text="【克拉玛依市民服务】测试", ref="notice:w1")
            )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if twilio.messages:
                    break
                await asyncio.sleep(0.1)
            assert [(m.to, m.body) for m in twilio.messages] == [("+8613900009999", "【克拉玛依市民服务】测试")]
        finally:
            worker.send_signal(signal.SIGTERM)
            output = (await asyncio.wait_for(worker.communicate(), 20))[0].decode()
            client = aioredis.from_url(REDIS_URL)
            await client.delete(*queue.keys, *RedisStreamQueue(REDIS_URL, prefix=f"{prefix}:in").keys)
            await client.aclose()
            await queue.close()
        assert worker.returncode == 0, output
        assert "8613900009999" not in output  # the phone number never reaches the worker's log
