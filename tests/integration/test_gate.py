"""The gate through the running bot: allow-lists, rate limits and the limit on bots' turns, with no model call for
what they refuse."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from store import keys
from store.connection import RedisClient
from tests.fakes import FakeAnthropic, FakeSlack, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
OTHER_BOT_ID = "B0OTHER"
OTHER_BOT_USER = "U0OTHERBOT"


def mention(slack: FakeSlack, text: str, *, user: str = "U0ALICE", thread_ts: str | None = None) -> dict[str, Any]:
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user=user, thread_ts=thread_ts, mention=True
    )


async def mentions_counted(bot: BotProcess) -> dict[tuple[str, str], float]:
    """The bot's slack_agent_mentions_total at /metrics, parsed by prometheus-client, by (outcome, reason)."""
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/metrics") as response:
        text = await response.text()
    [family] = [family for family in text_string_to_metric_families(text) if family.name == "slack_agent_mentions"]
    return {
        (sample.labels["outcome"], sample.labels["reason"]): sample.value
        for sample in family.samples
        if sample.name == "slack_agent_mentions_total"
    }


def replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [str(m.get("text", "")) for m in slack.bot_replies(CHANNEL, thread_ts)]


async def test_a_person_outside_the_allow_list_gets_one_polite_answer_and_no_model_call(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """With ALLOWED_USER_IDS set, someone else's two mentions get one notice that the bot is not enabled for them,
    and Claude is never called; a listed person is answered as usual."""
    bot = make_bot(ALLOWED_USER_IDS="U0ALICE")
    await bot.start()
    first = mention(slack, "what does this cost?", user="U0MALLORY")
    assert await bot.post_event(first) == 200
    await wait_until(lambda: len(replies(slack, first["event"]["ts"])) == 1, timeout=10)
    [notice] = replies(slack, first["event"]["ts"])
    assert notice.startswith("Sorry, I'm not enabled for you yet")
    second = mention(slack, "hello again?", user="U0MALLORY")
    assert await bot.post_event(second) == 200
    alice = mention(slack, "and for me?")
    assert await bot.post_event(alice) == 200
    await wait_until(lambda: any("echo:" in text for text in replies(slack, alice["event"]["ts"])), timeout=10)
    await asyncio.sleep(1)  # time to (wrongly) answer the second
    assert replies(slack, second["event"]["ts"]) == []
    assert len(claude.requests) == 1 and "and for me?" in str(claude.requests[0])
    assert await mentions_counted(bot) == {("accepted", "none"): 1, ("refused", "not_allowed"): 2}


async def let_the_minute_pass(redis: RedisClient, team_id: str, user_id: str) -> None:
    """Age the person's rate log by a minute, as a minute passing would (Redis keeps the window's clock: each counted
    mention's time), instead of the test waiting for one."""
    log = keys.rate_by_user(team_id, user_id)
    counted = await redis.zrange(log, 0, -1, withscores=True)
    await redis.zadd(log, {member: score - 60_000 for member, score in counted})


async def test_the_rate_limit_trips_at_its_number_and_lifts_after_its_window(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient
) -> None:
    """With RATE_LIMIT_PER_USER=2, a person's third mention within a minute gets a notice saying when to try again
    (at most a minute) and no model call; once the minute has passed, a mention is answered again."""
    bot = make_bot(RATE_LIMIT_PER_USER="2")
    await bot.start()
    asked = [mention(slack, f"question {n}") for n in range(3)]
    for envelope in asked:
        assert await bot.post_event(envelope) == 200
    threads = [envelope["event"]["ts"] for envelope in asked]
    await wait_until(
        lambda: all("echo:" in "".join(replies(slack, ts)) for ts in threads[:2]) and replies(slack, threads[2]),
        timeout=15,
    )
    [third] = replies(slack, threads[2])
    found = re.fullmatch(r"You've reached my limit of 2 mentions a minute\. Try again in (\d+) s\.", third)
    assert found, third
    assert len(claude.requests) == 2 and 0 < int(found.group(1)) <= 60
    still = mention(slack, "and now?")
    assert await bot.post_event(still) == 200
    await asyncio.sleep(1)  # time to (wrongly) answer it
    assert len(claude.requests) == 2 and replies(slack, still["event"]["ts"]) == []  # told once a wait: no notice
    await let_the_minute_pass(redis, slack.team_id, "U0ALICE")
    later = mention(slack, "is it my turn now?")
    assert await bot.post_event(later) == 200
    await wait_until(lambda: any("echo:" in text for text in replies(slack, later["event"]["ts"])), timeout=10)
    assert len(claude.requests) == 3
    assert await mentions_counted(bot) == {("accepted", "none"): 3, ("refused", "rate_limit"): 2}


@pytest.mark.both_redis
async def test_two_allowed_bots_stop_after_the_per_thread_limit(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Another allowed bot that mentions this one after each of its replies is answered MAX_BOT_TURNS_PER_THREAD
    times, then told once that the thread answers no bots for now, then ignored, so the loop ends; a person in the
    thread is still answered."""
    # The rate limits are on too, out of reach, so that all three logs are counted at once (on a cluster as well).
    limits = {"RATE_LIMIT_PER_USER": "10", "RATE_LIMIT_PER_THREAD": "10"}
    bot = make_bot(ALLOWED_BOT_IDS=OTHER_BOT_ID, MAX_BOT_TURNS_PER_THREAD="3", **limits)
    await bot.start()
    start = mention(slack, "you two, talk it over")
    thread = start["event"]["ts"]
    assert await bot.post_event(start) == 200
    await wait_until(lambda: len(replies(slack, thread)) == 1, timeout=10)
    for turn in range(1, 6):  # the other bot mentions this one after each of its replies, as a loop of two would
        text = f"<@{slack.bot_user_id}> your turn ({turn})"
        ping = slack.post_other_app_mention(CHANNEL, text, bot_id=OTHER_BOT_ID, user=OTHER_BOT_USER, thread_ts=thread)
        assert await bot.post_event(ping) == 200
        expected = min(turn, 4) + 1  # three answers, then the notice, then nothing
        await wait_until(lambda expected=expected: len(replies(slack, thread)) == expected, timeout=10)
    await asyncio.sleep(1)  # time to (wrongly) answer the fifth
    texts = replies(slack, thread)
    assert len(texts) == 5, texts
    assert all("echo:" in text for text in texts[:4])
    assert texts[4].startswith("I have answered bots 3 times in this thread in the last hour")
    assert len(claude.requests) == 4
    person = mention(slack, "ok, what did you two decide?", thread_ts=thread)
    assert await bot.post_event(person) == 200
    await wait_until(lambda: len(replies(slack, thread)) == 6 and "echo:" in replies(slack, thread)[-1], timeout=10)
    assert len(claude.requests) == 5
    assert await mentions_counted(bot) == {("accepted", "none"): 5, ("refused", "bot_turns"): 2}
