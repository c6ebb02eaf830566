"""Short-lived shared state: dedupe claims, sessions, rate limits and pub/sub.

Redis when several processes must share it; an in-memory twin for the single-process default.
Both pass the same contract tests (tests/test_state_contract.py).
"""

from gateway.state.base import StateStore, Subscription, WindowHit
from gateway.state.memory import MemoryState


def create_state(redis_url: str | None, prefix: str = "citygw") -> StateStore:
    if not redis_url:
        return MemoryState()
    from gateway.state.redis import RedisState

    return RedisState(redis_url, prefix)


__all__ = ["MemoryState", "StateStore", "Subscription", "WindowHit", "create_state"]
