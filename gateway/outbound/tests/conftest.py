from collections.abc import AsyncIterator

import pytest

from gateway.outbound.queue import OutboundQueue
from gateway.outbound.tests.test_queue_contract import Backend


@pytest.fixture(params=["memory", "redis"])
async def backend(request) -> AsyncIterator[Backend]:
    b = Backend(request.param)
    yield b
    await b.close()


@pytest.fixture
def queue(backend: Backend) -> OutboundQueue:
    return backend.open()
