"""The task queue's faults through the running bot: a lost stream, garbage entries, a Redis that refuses writes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from store import keys
from tests.fakes import FakeAnthropic, FakeSlack, user_texts, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.redis_server import PrivateRedis

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
BUSY = ("Thinking", "restarted", "retrying…", "cannot be reached")


def mention(slack: FakeSlack, text: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=thread_ts, mention=True
    )


def final_replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    """The bot's replies in the thread once none is a placeholder or a streamed preview any more."""
    shown = [str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)]
    if any(word in text for text in shown for word in BUSY) or any(text.endswith("✍️") for text in shown):
        return []
    return shown


async def queue_empty(redis: Redis) -> bool:
    """Whether no thread is queued or held (a thread is released just after its last answer is posted)."""
    return await redis.xlen(keys.QUEUE) == 0 and (await redis.xpending(keys.QUEUE, keys.WORKER_GROUP))["pending"] == 0


async def health(bot: BotProcess) -> tuple[int, dict[str, object]]:
    """GET /healthz: status and JSON body."""
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/healthz") as response:
        return response.status, await response.json()


@pytest.mark.parametrize("slots", ["200", "1"], ids=["free-slots", "every-slot-busy"])
async def test_a_mention_in_a_queued_thread_is_answered_after_the_task_stream_is_deleted(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, slots: str
) -> None:
    """`DEL agent:queue` while a thread's task runs: the queue heals (found by the claim, or with every slot busy
    by the running task or the lease keeper), and both that task and a new mention in the thread are answered,
    once each."""
    bot = make_bot(MAX_CONCURRENT_TASKS=slots)
    await bot.start()
    gate = asyncio.Event()
    claude.reply_text("lost with the stream", gate=gate)
    first = mention(slack, "question one")
    thread_ts = str(first["event"]["ts"])
    assert await bot.post_event(first) == 200
    await wait_until(lambda: len(claude.requests) == 1, timeout=10)  # its model call is under way
    assert await redis.exists(keys.QUEUE) and await redis.delete(keys.QUEUE) == 1
    gate.set()
    assert await bot.post_event(mention(slack, "question two", thread_ts=thread_ts)) == 200
    answers = await wait_until(
        lambda: len(final_replies(slack, thread_ts)) == 2 and final_replies(slack, thread_ts), timeout=20
    )
    assert all(answer.startswith("echo:") for answer in answers)  # the late answer of the lost lease is not posted
    asked = "\n".join(text for request in claude.requests[1:] for text in user_texts(request))
    assert "question one" in asked and "question two" in asked
    await wait_until(lambda: queue_empty(redis), timeout=5)
    assert len(slack.bot_replies(CHANNEL, thread_ts)) == 2  # and no second answer came late
    assert bot.process is not None and bot.process.returncode is None


async def test_garbage_in_the_task_stream_is_dropped_and_the_bot_keeps_answering(
    bot: BotProcess, slack: FakeSlack, redis: Redis
) -> None:
    """Entries that name no thread, new or pending to the worker from before a restart, are dropped with a warning;
    the bot stays up and answers mentions, before and after the restart."""
    await redis.xadd(keys.QUEUE, {"thread": "garbage"})
    await redis.xadd(keys.QUEUE, {"no_thread": "here"})
    before = mention(slack, "still there?")
    assert await bot.post_event(before) == 200
    assert await wait_until(lambda: final_replies(slack, str(before["event"]["ts"])), timeout=15)
    assert await bot.stop() == 0
    await redis.xadd(keys.QUEUE, {"thread": "T:C"})
    await redis.xreadgroup(keys.WORKER_GROUP, bot.env["DYNO"], {keys.QUEUE: ">"})  # as if it crashed holding it
    await bot.start()
    after = mention(slack, "and now?")
    assert await bot.post_event(after) == 200
    assert await wait_until(lambda: final_replies(slack, str(after["event"]["ts"])), timeout=15)
    assert bot.process is not None and bot.process.returncode is None
    assert bot.output().count("does not name a thread") == 3
    await wait_until(lambda: queue_empty(redis), timeout=5)


async def test_healthz_answers_503_while_redis_refuses_writes(
    make_bot: BotFactory, slack: FakeSlack, private_redis: PrivateRedis
) -> None:
    """A Redis that would evict keys is warned about at start; out of memory under noeviction, it still answers
    PING but refuses writes, and /healthz says 503 until it takes writes again."""
    server = Redis.from_url(private_redis.url, decode_responses=True)
    try:
        await server.config_set("maxmemory-policy", "allkeys-lru")
        bot = make_bot(REDIS_URL=private_redis.url)
        await bot.start()
        assert "maxmemory-policy is allkeys-lru" in bot.output()
        await server.config_set("maxmemory-policy", "noeviction")
        await server.config_set("maxmemory", "1")
        status, body = await health(bot)
        assert (status, body["status"], body["redis"]) == (503, "unavailable", "refuses writes")
        assert await bot.post_event(mention(slack, "hello")) >= 500  # not acknowledged: Slack delivers it again
    finally:
        await server.config_set("maxmemory", "0")
        await server.aclose()
    status, body = await health(bot)
    assert (status, body["redis"]) == (200, "ok")
