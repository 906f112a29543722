"""Fixtures for tests that run the real bot process against fakes and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis, RedisCluster

from store.connection import RedisClient
from tests.conftest import redis_url_for_tests
from tests.fakes import FakeAnthropic, FakeSlack
from tests.integration.harness import SIGNING_SECRET, BotProcess, free_port
from tests.integration.playground_process import Playground, eventually
from tests.integration.redis_cluster import LocalCluster
from tests.integration.redis_server import PrivateRedis

BotFactory = Callable[..., BotProcess]


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    """A fake Anthropic Messages API server."""
    async with FakeAnthropic() as fake:
        yield fake


BACKENDS = ("standalone", "cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `both_redis` run twice: against a standalone Redis and against a three-master cluster."""
    if metafunc.definition.get_closest_marker("both_redis") and "redis_backend" in metafunc.fixturenames:
        metafunc.parametrize("redis_backend", BACKENDS, indirect=True)


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> str:
    """Which Redis the test's bot uses: "standalone" unless the test is marked both_redis."""
    return str(getattr(request, "param", "standalone"))


@pytest.fixture
def redis_url(redis_backend: str, request: pytest.FixtureRequest) -> str:
    """REDIS_URL for the test's bot: the test process's own Redis, or a node of its cluster (emptied)."""
    if redis_backend == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        return cluster.url
    return redis_url_for_tests()


@pytest.fixture
async def redis(redis_url: str, redis_backend: str) -> AsyncIterator[RedisClient]:
    """A client on the emptied test Redis: the cluster client when the bot runs on the cluster."""
    client: RedisClient
    if redis_backend == "cluster":
        client = RedisCluster.from_url(redis_url, decode_responses=True)
    else:
        client = Redis.from_url(redis_url, decode_responses=True)
        await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def bot_env(slack: FakeSlack, claude: FakeAnthropic, redis: object, redis_url: str) -> dict[str, str]:
    """Settings for a bot process that talks only to the fakes and the emptied test Redis."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": "test-anthropic-key",
        "ANTHROPIC_BASE_URL": claude.base_url,
        "REDIS_URL": redis_url,
        "DYNO": "web.1",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of the test's own, with an append-only file, that the test may stop and start."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def make_bot(bot_env: dict[str, str], tmp_path: Path, redis_backend: str) -> AsyncIterator[BotFactory]:
    """Build bot processes (not started); every one still running at the end is killed. On the cluster, no bot may
    have met a cross-slot or MOVED error: a thread's keys share one slot, and the client follows the slot map."""
    started: list[BotProcess] = []

    def factory(*args: str, **overrides: str) -> BotProcess:
        env = {**bot_env, "PORT": str(free_port()), **overrides}
        bot = BotProcess(env, tmp_path, args=args)
        started.append(bot)
        return bot

    yield factory
    for bot in started:
        if bot.process is not None and bot.process.returncode is None:
            await bot.kill()
        # Shown by pytest only when the test fails.
        print(f"----- {bot.log_path.name} -----\n{bot.output()}")
    if redis_backend == "cluster":
        for bot in started:
            assert not {"CROSSSLOT", "MOVED"} & set(bot.output().split()), f"{bot.log_path.name}: a slot error"


@pytest.fixture
async def bot(make_bot: BotFactory) -> BotProcess:
    """One running bot process in HTTP mode."""
    process = make_bot()
    await process.start()
    return process


@pytest.fixture
def playground(tmp_path: Path) -> Iterator[Playground]:
    """`python -m bot dev` with its bot running; stopped with Ctrl-C at the end, which must exit cleanly."""
    server = Playground(tmp_path)
    try:
        eventually(lambda: server.state().get("bot", {}).get("state") == "running", 40, "a running bot")
        yield server
    finally:
        if server.process.poll() is None:
            code = server.stop()
            print(server.output())  # shown by pytest only when the test fails
            assert code == 0, "the playground did not stop cleanly on Ctrl-C"
