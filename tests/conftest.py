from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from gateway.config import Settings
from gateway.rasa_env import train
from tests.fake_rasa import FakeRasa, make_template_database
from tests.stack import REDIS_URL, Stack, fresh_database

# Two full systems: the embedded default, and the multi-process deployment's backends.
BACKENDS = {"sqlite": None, "postgres": REDIS_URL}


@pytest.fixture(scope="session")
def stacks(tmp_path_factory) -> Iterator[dict[str, Stack]]:
    model = train(Settings())
    started: dict[str, Stack] = {}
    try:
        for name, redis_url in BACKENDS.items():
            directory = tmp_path_factory.mktemp(f"stack-{name}")
            stack = Stack(name, fresh_database(name, directory), redis_url, directory, model)
            started[name] = stack
            stack.start()  # all processes start together; Rasa loads take most of the time
        for stack in started.values():
            stack.wait()
        yield started
    finally:
        for stack in started.values():
            stack.stop()


@pytest.fixture(params=list(BACKENDS))
def stack(request, stacks) -> Stack:
    return stacks[request.param]


@pytest.fixture
def gateway_url(stacks) -> str:
    return stacks["sqlite"].url


class Chat:
    """One citizen talking through the web chat REST endpoint, with a fresh session."""

    def __init__(self, http: aiohttp.ClientSession, stack: Stack) -> None:
        self.http, self.stack = http, stack
        self.session = ""  # issued by the server on the first message
        self.replies: list[dict] = []

    async def say(self, text: str, message_id: str | None = None) -> list[dict]:
        if not self.session:
            async with self.http.post(f"{self.stack.url}/api/webchat/sessions") as response:
                assert response.status == 201, await response.text()
                self.session = (await response.json())["session"]
        body = {"session": self.session, "text": text}
        if message_id:
            body["id"] = message_id
        async with self.http.post(f"{self.stack.url}/api/webchat/messages", json=body) as response:
            payload = await response.json()
            assert response.status == 200, payload
        self.replies = payload["replies"]
        return self.replies

    @property
    def text(self) -> str:
        return "\n".join(r["text"] for r in self.replies)

    @property
    def buttons(self) -> list[dict]:
        return [b for r in self.replies for b in r["buttons"]]

    async def press(self, title_part: str) -> list[dict]:
        matching = [b for b in self.buttons if title_part in b["title"]]
        assert matching, f"no button with {title_part!r} in {[b['title'] for b in self.buttons]}"
        return await self.say(matching[0]["payload"])


# In-process gateway tests (test_bad_input, test_bridge): a migrated SQLite template per module and
# a stand-in Rasa speaking its REST webhook contract.
@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return make_template_database(tmp_path_factory.mktemp("template"))


@pytest_asyncio.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    fake = FakeRasa()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> Iterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def chat(http, stack) -> Chat:
    return Chat(http, stack)
