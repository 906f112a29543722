"""Fixtures shared by every test: a clean environment and a real, emptied Redis database."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

# A database of its own on the local Redis, so the tests never touch db 0; flushed before each test.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
_CLEARED_PREFIXES = ("SLACK_", "ANTHROPIC_", "REDIS_")
_CLEARED_NAMES = {"PORT", "DYNO", "SYSTEM_PROMPT", "LOG_LEVEL", "DATA_DIR"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Tests build Settings explicitly: nothing leaks in from the developer's shell or a .env file."""
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(str(tmp_path))


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client on the emptied test database."""
    client = Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()
