"""The task queue's faults through the running bot: a lost stream, garbage entries, a Redis that refuses writes."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from store import keys
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, user_texts, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.redis_server import PrivateRedis
from tests.integration.stored import SPACE, queue_empty

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


async def health(bot: BotProcess) -> tuple[int, dict[str, object]]:
    """GET /healthz: status and JSON body."""
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/healthz") as response:
        return response.status, await response.json()


@pytest.mark.parametrize("slots", ["200", "1"], ids=["free-slots", "every-slot-busy"])
async def test_a_mention_in_a_queued_thread_is_answered_after_the_task_stream_is_deleted(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, slots: str
) -> None:
    """`DEL` of the thread's shard's stream while its task runs: the queue heals (found by the claim, or with every
    slot busy by the next claim or the lease keeper), and both that task and a new mention in the thread are
    answered, once each.

    Losing the stream does not take the thread from the run that holds it: its fence is the thread's flag, which
    still names it until the heal gives the thread a new entry. So the first answer is the model's late one if the
    run journaled it before the heal, else the new entry's run asks again; either way it is posted once.
    """
    bot = make_bot(MAX_CONCURRENT_TASKS=slots)
    await bot.start()
    gate = asyncio.Event()
    claude.reply_text("lost with the stream", gate=gate)
    first = mention(slack, "question one")
    thread_ts = str(first["event"]["ts"])
    assert await bot.post_event(first) == 200
    await wait_until(lambda: len(claude.requests) == 1, timeout=10)  # its model call is under way
    queue = SPACE.thread_queue(ThreadRef(slack.team_id, CHANNEL, thread_ts))
    assert await redis.xlen(queue) == 1 and await redis.delete(queue) == 1  # the stream that held its entry
    gate.set()
    assert await bot.post_event(mention(slack, "question two", thread_ts=thread_ts)) == 200
    answers = await wait_until(
        lambda: len(final_replies(slack, thread_ts)) == 2 and final_replies(slack, thread_ts), timeout=20
    )
    assert answers[0] == "lost with the stream" or answers[0].startswith("echo:"), answers
    assert answers[1].startswith("echo:") and "question two" in user_texts(claude.requests[-1])[-2]
    assert "question one" in " ".join(user_texts(claude.requests[-1]))  # the first exchange is remembered
    assert len(claude.requests) == (2 if answers[0] == "lost with the stream" else 3)  # no question asked twice more
    await wait_until(lambda: group_exists(redis, queue), timeout=10)  # healed, whoever met the loss first
    await wait_until(lambda: queue_empty(redis), timeout=5)
    assert len(slack.bot_replies(CHANNEL, thread_ts)) == 2  # and no second answer came late
    assert bot.process is not None and bot.process.returncode is None


async def group_exists(redis: Redis, queue: str) -> bool:
    """Whether the stream exists with its consumer group."""
    if not await redis.exists(queue):
        return False
    return any(group["name"] == keys.WORKER_GROUP for group in await redis.xinfo_groups(queue))


async def test_garbage_in_the_task_stream_is_dropped_and_the_bot_keeps_answering(
    bot: BotProcess, slack: FakeSlack, redis: Redis
) -> None:
    """Entries that name no thread of their shard, new or pending to the worker from before a restart, are dropped
    with a warning; the bot stays up and answers mentions, before and after the restart."""
    first, last = SPACE.queue(0), SPACE.queue(SPACE.shards - 1)
    await redis.xadd(first, {"thread": "garbage"})
    await redis.xadd(last, {"no_thread": "here"})
    elsewhere = next(ref for n in range(100) if SPACE.shard_of(ref := ThreadRef("T0", "C0", f"{n}.0")) != 0)
    await redis.xadd(first, {"thread": elsewhere.encode()})  # a real thread, but of another shard
    before = mention(slack, "still there?")
    assert await bot.post_event(before) == 200
    assert await wait_until(lambda: final_replies(slack, str(before["event"]["ts"])), timeout=15)
    assert await bot.stop() == 0
    await redis.xadd(last, {"thread": "T:C"})
    await redis.xreadgroup(keys.WORKER_GROUP, bot.env["DYNO"], {last: ">"})  # as if it crashed holding it
    await bot.start()
    after = mention(slack, "and now?")
    assert await bot.post_event(after) == 200
    assert await wait_until(lambda: final_replies(slack, str(after["event"]["ts"])), timeout=15)
    assert bot.process is not None and bot.process.returncode is None
    assert bot.output().count("does not name a thread") == 4
    await wait_until(lambda: queue_empty(redis), timeout=5)
    assert await redis.xlen(first) == 0 and await redis.xlen(last) == 0  # dropped entries are deleted too


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
