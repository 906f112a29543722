"""Fixtures for tests that run the real bot process against fakes and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import redis_url_for_tests
from tests.fakes import FakeAnthropic, FakeSlack
from tests.integration.harness import SIGNING_SECRET, BotProcess, free_port
from tests.integration.playground_process import Playground, eventually
from tests.integration.redis_server import PrivateRedis

BotFactory = Callable[..., BotProcess]


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    """A fake Anthropic Messages API server."""
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def bot_env(slack: FakeSlack, claude: FakeAnthropic, redis: object) -> dict[str, str]:
    """Settings for a bot process that talks only to the fakes and the emptied test Redis."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": "test-anthropic-key",
        "ANTHROPIC_BASE_URL": claude.base_url,
        "REDIS_URL": redis_url_for_tests(),
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
async def make_bot(bot_env: dict[str, str], tmp_path: Path) -> AsyncIterator[BotFactory]:
    """Build bot processes (not started); every one still running at the end is killed."""
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
