"""The NOTICE task: a notice intake decided on, posted in its thread with no model call and no agent made."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from bot.tasks.small_tasks import NoticePoster
from handlers.gateway import WebApiGateway
from store.journal import TaskJournal
from store.models import Task, TaskKind, TaskStatus, ThreadRef
from store.tasks import TaskQueue
from tests.fakes import FakeSlack
from tests.unit.store.conftest import SPACE, lease_on, make_groups

CHANNEL = "C0GENERAL"


async def test_a_notice_is_posted_in_its_thread_and_leaves_no_agent(
    redis: Redis, gateway: WebApiGateway, slack: FakeSlack
) -> None:
    """A NOTICE task posts its text as a reply in the thread, is done, and leaves the thread without an agent (the
    refused message is no turn of a conversation) and without a channel listing."""
    ts = slack.add_message(CHANNEL, "a refused question", user="U0ALICE")
    thread = ThreadRef(slack.team_id, CHANNEL, ts)
    queue = TaskQueue(redis, SPACE)
    await make_groups(queue)
    text = "Sorry, I'm not enabled in this channel."
    await queue.submit(Task("Ev1", TaskKind.NOTICE, thread, text, "U0ALICE", ts, time.time()))
    lease = await lease_on(queue, thread)
    journal = TaskJournal(redis, SPACE)
    task = await queue.head(thread)
    assert task is not None
    await journal.start(lease, task)
    await NoticePoster(journal, gateway)(lease, task, attempt=1)
    [reply] = slack.bot_replies(CHANNEL, ts)
    assert reply["text"] == text
    assert await redis.hget(SPACE.task(thread, "Ev1"), "status") == TaskStatus.DONE.value
    assert not await redis.exists(SPACE.state(thread), SPACE.thread_channel_threads(thread))
    assert await queue.head(thread) is None
