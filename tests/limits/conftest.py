"""``backend``: each test that takes it runs on both stores, in memory and on the private redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from worker.limits.store import MemoryStore, RedisStore, Store, redis_client


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client = redis_client(request.getfixturevalue("redis_url"), timeout_s=3)
    try:
        yield RedisStore(client)
    finally:
        client.close()
