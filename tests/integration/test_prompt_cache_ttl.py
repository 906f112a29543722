"""The prompt cache's TTL through the running bot process: a turn 10 minutes after the last reads the thread's prefix
from the cache with the 1-hour TTL (PROMPT_CACHE_TTL's default) but not with the 5-minute one, and the cost the bot
records prices each cache write at its TTL's rate."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from store import decode
from store.models import ThreadRef, Usage
from tests.fakes import FakeAnthropic, FakeSlack, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.stored import SPACE

pytestmark = pytest.mark.integration
CHANNEL = "C0CACHE"
# Past the 1,024 tokens the API needs to cache a prefix, so the system prompt alone is cached.
SYSTEM_PROMPT = "You answer questions in a Slack thread, briefly and precisely. " * 100
# Per million tokens at Sonnet's list price: uncached input, 5-minute write, 1-hour write, read, output.
SONNET = {"input": 3.0, "write_5m": 3.75, "write_1h": 6.0, "read": 0.30, "output": 15.0}


def expected_microusd(usage: dict[str, Any]) -> float:
    """What one call costs at list prices, in micro-dollars, from the usage the fake reported."""
    split = usage["cache_creation"]
    return (
        usage["input_tokens"] * SONNET["input"]
        + split["ephemeral_5m_input_tokens"] * SONNET["write_5m"]
        + split["ephemeral_1h_input_tokens"] * SONNET["write_1h"]
        + usage["cache_read_input_tokens"] * SONNET["read"]
        + usage["output_tokens"] * SONNET["output"]
    )


async def ask(bot: BotProcess, slack: FakeSlack, redis: Redis, text: str, thread_ts: str | None, calls: int) -> str:
    """Mention the bot with `text` (in the thread, if given) and wait until the task's usage is recorded."""
    envelope = slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=thread_ts, mention=True
    )
    thread_ts = thread_ts or str(envelope["event"]["ts"])
    await bot.post_event(envelope)
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    await wait_until(lambda: recorded(redis, ref, calls), timeout=15)
    return thread_ts


async def recorded(redis: Redis, ref: ThreadRef, calls: int) -> bool:
    return (await usage_of_thread(redis, ref)).model_calls == calls


async def usage_of_thread(redis: Redis, ref: ThreadRef) -> Usage:
    return Usage.from_fields(decode.fields(await redis.hgetall(SPACE.state(ref))))


@pytest.mark.parametrize(("ttl", "read_after_pause"), [("1h", True), ("5m", False)])
async def test_a_turn_10_minutes_later_reads_the_cache_only_with_the_1_hour_ttl_and_costs_are_priced_by_ttl(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, ttl: str, read_after_pause: bool
) -> None:
    """Two turns 10 minutes apart (on the fake's clock): with PROMPT_CACHE_TTL=1h the second reads the system prompt
    and the first turn from the cache and writes only to the 1-hour cache; with 5m it reads nothing. Either way the
    thread's recorded cost is what the calls cost with 1-hour writes at 2x and 5-minute ones at 1.25x the input."""
    bot = make_bot(SYSTEM_PROMPT=SYSTEM_PROMPT, PROMPT_CACHE_TTL=ttl)
    await bot.start()
    thread_ts = await ask(bot, slack, redis, "What is the plan for Monday? " * 20, None, calls=1)
    claude.prompt_cache.advance(600)
    await ask(bot, slack, redis, "And for Tuesday?", thread_ts, calls=2)

    first, second = claude.usages[-2:]
    if read_after_pause:
        assert second["cache_read_input_tokens"] > first["cache_creation_input_tokens"] - 50
        assert second["cache_creation"]["ephemeral_5m_input_tokens"] == 0
        assert first["cache_creation"]["ephemeral_1h_input_tokens"] == first["cache_creation_input_tokens"] > 1024
    else:
        assert second["cache_read_input_tokens"] == 0
        assert second["cache_creation"]["ephemeral_1h_input_tokens"] == 0
    usage = await usage_of_thread(redis, ThreadRef(slack.team_id, CHANNEL, thread_ts))
    writes_1h = (
        first["cache_creation"]["ephemeral_1h_input_tokens"] + second["cache_creation"]["ephemeral_1h_input_tokens"]
    )
    assert usage.cache_write_1h_tokens == writes_1h
    assert usage.cost_microusd == pytest.approx(expected_microusd(first) + expected_microusd(second), abs=2)
