"""Fixtures shared by every test: a clean environment and a real, emptied Redis database."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.fakes import FakeSlack
from tests.integration.redis_server import PrivateRedis

# The Redis Cluster fixtures (redis_cluster, redis_cluster_with_replicas), for unit and integration tests alike.
pytest_plugins = ["tests.integration.cluster_fixtures"]

_session_redis: PrivateRedis | None = None


def redis_url_for_tests() -> str:
    """The Redis the tests use: TEST_REDIS_URL if set, else a redis-server of this test process's own.

    A server per process (per pytest-xdist worker) keeps parallel runs apart entirely: the bot checks whether
    its consumer name is taken across the whole server, not one database.
    """
    return os.environ.get("TEST_REDIS_URL") or _start_session_redis()


def _start_session_redis() -> str:
    global _session_redis
    if _session_redis is None:
        folder = Path(tempfile.mkdtemp(prefix="test-redis-"))
        _session_redis = PrivateRedis(folder, extra_args=("--appendonly", "no"))
        _session_redis.start()
    return _session_redis.url


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two test processes per core. The integration tests spend most of their time waiting for bot
    processes, Redis servers and sockets, so one process per core leaves the cores half idle."""
    return 2 * (os.cpu_count() or 1)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_redis is not None:
        _session_redis.stop()
        shutil.rmtree(_session_redis.data_dir, ignore_errors=True)


_CLEARED_PREFIXES = ("SLACK_", "ANTHROPIC_", "REDIS_", "METRICS_", "ALLOWED_", "RATE_LIMIT_", "DAILY_BUDGET_")
_CLEARED_NAMES = {
    "PORT",
    "DYNO",
    "SYSTEM_PROMPT",
    "LOG_LEVEL",
    "LOG_LEVEL_LIBRARIES",
    "LOG_FORMAT",
    "DATA_DIR",
    "MAX_BOT_TURNS_PER_THREAD",
    "ADMIN_USER_IDS",
    "WORKSPACE_ADMINS_ARE_ADMINS",
}


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
    client = Redis.from_url(redis_url_for_tests(), decode_responses=True)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The Slack emulator (Web API, files and Socket Mode), on a free local port, as a workspace without agent
    features: what every test written before them asserts is what the fallback (👀, updated messages) does. Tests of
    sessions and native streaming turn them on (`agent_slack`)."""
    async with FakeSlack() as fake:
        fake.agent_features = False
        yield fake
