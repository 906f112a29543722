"""Scenario tests of `/agent`: signed slash commands through the real Bolt app."""

from __future__ import annotations

import json
import time

from redis.asyncio import Redis

from bot.app import Bot
from handlers.commands import ThreadLink, parse_thread_link
from store import keys
from store.journal import TaskJournal
from store.models import Task, TaskKind, TaskStatus, ThreadRef, Turn, Usage
from store.tasks import TaskQueue
from tests.fakes import FakeSlack, slash_command_form
from tests.unit.handlers.scenario import dispatch_command

CHANNEL = "C0GENERAL"
THREAD_TS = "1700000000.000100"
USAGE = Usage(input_tokens=7, output_tokens=3, model_calls=1, cache_read_tokens=93, cost_microusd=1234)
LINK = f"<https://fake.slack.com/archives/{CHANNEL}/p1700000000000100>"


async def seed_agent(redis: Redis, team_id: str, thread_ts: str = THREAD_TS) -> ThreadRef:
    """A thread whose agent answered once."""
    ref = ThreadRef(team_id, CHANNEL, thread_ts)
    queue = TaskQueue(redis)
    await queue.ensure_group()
    await queue.submit(Task(f"Ev{thread_ts}", TaskKind.ANSWER, ref, "q", "U1", thread_ts, time.time()))
    [lease] = await queue.claim_new("test.1", count=1, block_ms=10)
    task = await queue.head(ref)
    assert task is not None
    turns = [Turn("user", "q"), Turn("assistant", "a")]
    await TaskJournal(redis).finish(lease, task, TaskStatus.DONE, turns=turns, usage=USAGE)
    return ref


async def run_command(bot: Bot, slack: FakeSlack, text: str, channel_id: str = CHANNEL) -> str:
    """The ephemeral text Bolt answers a `/agent` command with."""
    form = slash_command_form("/agent", text, team_id=slack.team_id, channel_id=channel_id, user_id="U0ALICE")
    response = await dispatch_command(bot, form)
    assert response.status == 200
    body = json.loads(response.body)
    assert body["response_type"] == "ephemeral"
    return str(body["text"])


async def test_no_words_shows_help(bot: Bot, slack: FakeSlack) -> None:
    """`/agent` alone explains its words."""
    assert "/agent status" in await run_command(bot, slack, "")


async def test_status_lists_the_channels_agents(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """`/agent status` in a channel shows the channel's usage and lists its agents with turns and cost."""
    assert "No agents" in await run_command(bot, slack, "status")
    await seed_agent(redis, slack.team_id)
    reply = await run_command(bot, slack, "status")
    assert "100 tokens in, 93% read from cache, 3 out, 1 model calls, about $0.0012" in reply
    assert THREAD_TS in reply and "2 turns" in reply


async def test_status_of_one_thread_by_link(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """`/agent status <link>` shows that thread's agent."""
    await seed_agent(redis, slack.team_id)
    reply = await run_command(bot, slack, f"status {LINK}")
    assert "Turns: 2" in reply and "100 tokens in, 93% read from cache" in reply


async def test_reset_by_link_queues_a_reset_task(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """`/agent reset <link>` queues a reset behind the thread's work instead of deleting under a running task."""
    ref = await seed_agent(redis, slack.team_id)
    assert "Resetting" in await run_command(bot, slack, f"reset {LINK}")
    [task_id] = await redis.lrange(keys.inbox(ref), 0, -1)
    assert await redis.hget(keys.task(slack.team_id, task_id), "kind") == "reset"


async def test_reset_needs_a_thread_of_this_channel_with_an_agent(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Reset without a link, with another channel's link, or for a thread without agent changes nothing."""
    assert "Which thread" in await run_command(bot, slack, "reset")
    assert "channel of that thread" in await run_command(bot, slack, f"reset {LINK}", channel_id="C0OTHER")
    assert "no agent" in await run_command(bot, slack, f"reset {LINK}")
    assert await redis.dbsize() == 0


def test_thread_links_parse_to_their_thread() -> None:
    """A parent's link gives its own ts; a reply's link gives its thread's ts; other text gives None."""
    assert parse_thread_link(LINK) == ThreadLink(CHANNEL, THREAD_TS)
    reply = f"https://x.slack.com/archives/{CHANNEL}/p1700000099000200?thread_ts={THREAD_TS}&cid={CHANNEL}"
    assert parse_thread_link(reply) == ThreadLink(CHANNEL, THREAD_TS)
    assert parse_thread_link("status please") is None
