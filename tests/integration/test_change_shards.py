"""`python -m bot migrate --queue-shards N` as an operator runs it, then the bot started with the new QUEUE_SHARDS."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from store import keys
from tests.conftest import redis_url_for_tests
from tests.fakes import FakeAnthropic, FakeSlack, app_mention_event, event_envelope, new_ts, user_texts, wait_until
from tests.integration.conftest import BotFactory
from tests.unit.store.reshard_data import IDLE, build

pytestmark = pytest.mark.integration


async def run(make_bot: BotFactory, *args: str, **env: str) -> tuple[int, str]:
    """Run `python -m bot ARGS` to its end; its exit code and what it logged."""
    process = make_bot(*args, **env)
    await process.start(wait_ready=False)
    assert process.process is not None
    return await process.process.wait(), process.output()


async def test_the_command_moves_the_data_and_the_bot_starts_only_with_the_new_number(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Refused while a bot process is connected; run with every process stopped, it moves the data; then a bot with
    the old QUEUE_SHARDS refuses to start, naming the command, and one with the new number remembers the threads."""
    await build(redis)
    process = Redis.from_url(redis_url_for_tests(), client_name="agent-worker:worker.1")
    await process.ping()
    try:
        code, output = await run(make_bot, "migrate", "--queue-shards", "7", QUEUE_SHARDS="4")
        assert code == 1 and "worker.1 is connected" in output, output
    finally:
        await process.aclose()
    code, output = await run(make_bot, "migrate", "--queue-shards=7", QUEUE_SHARDS="4")
    assert code == 0, output
    assert "start every process with QUEUE_SHARDS=7" in output
    assert await redis.hgetall(keys.LAYOUT) == {"version": "2", "shards": "7"}

    code, output = await run(make_bot, QUEUE_SHARDS="4")
    assert code == 1 and "set QUEUE_SHARDS=7" in output and "migrate --queue-shards 4" in output, output
    bot = make_bot(QUEUE_SHARDS="7")
    await bot.start()
    mention = app_mention_event(
        f"<@{slack.bot_user_id}> and Q4?", user="U1", channel=IDLE.channel_id, ts=new_ts(), thread_ts=IDLE.thread_ts
    )
    assert await bot.post_event(event_envelope(mention, team_id=IDLE.team_id)) == 200
    await wait_until(lambda: any("and Q4?" in " ".join(user_texts(r)) for r in claude.requests), timeout=10)
    request = str(next(r for r in claude.requests if "and Q4?" in " ".join(user_texts(r))))
    assert "Ana asked about the Q3 budget." in request and "answer EvI1" in request
