"""Scenario tests of the three ways to stop an answer: the Stop button's event, `@bot stop` and `/agent stop`."""

from __future__ import annotations

import json
import logging
import time

import pytest
from redis.asyncio import Redis

from bot.runtime.app import Bot
from store import keys
from store.journal import TaskJournal
from store.models import Task, TaskKind, ThreadRef
from store.tasks import TaskQueue
from tests.fakes import FakeSlack, app_mention_event, event_envelope, new_ts, slash_command_form
from tests.unit.handlers.scenario import dispatch, dispatch_command
from tests.unit.store.conftest import SPACE, lease_on, make_groups

CHANNEL = "C0GENERAL"
THREAD_TS = "1700000000.000100"


def stop_pressed(slack: FakeSlack, thread_ts: str = THREAD_TS, **fields: object) -> dict[str, object]:
    """The agent_session_stopped envelope (SLACK_AGENT_DOCS.md §2): no team in the event, only on the envelope."""
    event: dict[str, object] = {
        "type": "agent_session_stopped",
        "channel": CHANNEL,
        "user": "U0BOB",
        "thread_ts": thread_ts,
        "streaming_message_ts": [],
        "event_ts": new_ts(),
    }
    event.update(fields)
    return event_envelope(event, team_id=slack.team_id)


async def running_answer(redis: Redis, slack: FakeSlack) -> tuple[ThreadRef, Task]:
    """A thread whose answer worker "worker.1" has started."""
    ref = ThreadRef(slack.team_id, CHANNEL, THREAD_TS)
    queue = TaskQueue(redis, SPACE)
    await make_groups(queue)
    await queue.submit(Task("EvAnswer", TaskKind.ANSWER, ref, "a long story", "U0ALICE", THREAD_TS, time.time()))
    lease = await lease_on(queue, ref, consumer="worker.1")
    task = await queue.head(ref)
    assert task is not None
    await TaskJournal(redis, SPACE).start(lease, task)
    return ref, task


async def test_stop_pressed_marks_the_running_answer_and_tells_its_worker(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """The event names the thread by channel and thread_ts and the team on its envelope: that thread's answer is
    marked stopped by the person who pressed Stop, and its worker gets the notice."""
    ref, task = await running_answer(redis, slack)
    assert await dispatch(bot, stop_pressed(slack)) == 200
    assert await redis.hget(SPACE.task(ref, task.task_id), "stop_by") == "U0BOB"
    [raw] = await redis.lrange(keys.stop_notices("worker.1"), 0, -1)
    assert json.loads(raw) == {"thread": ref.encode(), "task_id": task.task_id, "by": "U0BOB"}


async def test_stop_pressed_with_nothing_running_only_sets_the_session_back_to_active(
    bot: Bot, slack: FakeSlack, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing runs in the thread: acknowledged, nothing written, nothing posted, one line at INFO; the session Slack
    left as it was is set back to active (it must not stay "processing")."""
    slack.agent_features = True
    with caplog.at_level(logging.INFO, logger="handlers.session_listeners"):
        assert await dispatch(bot, stop_pressed(slack)) == 200
    assert "with nothing running" in caplog.text
    assert await redis.dbsize() == 0
    assert not slack.calls_to("chat.postMessage")
    [status] = slack.calls_to("agents.sessions.setStatus")
    assert (status["channel_id"], status["thread_ts"], status["status"]) == (CHANNEL, THREAD_TS, "active")


async def test_a_malformed_stop_event_is_acknowledged_and_ignored(
    bot: Bot, slack: FakeSlack, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """An event without its user (or with a channel no thread can have) is logged and acknowledged: a retry would
    not parse either."""
    assert await dispatch(bot, stop_pressed(slack, user=None)) == 200
    assert await dispatch(bot, stop_pressed(slack, channel="C:1")) == 200
    assert caplog.text.count("ignoring a malformed agent_session_stopped event") == 2
    assert await redis.dbsize() == 0


async def test_the_stop_word_acts_at_once_and_says_so_in_the_thread(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """`@bot stop` is no task waiting behind the answer: it marks the answer now and says "Stopping…" in the thread;
    with nothing running it says so."""
    slack.add_user("U0BOB", "bob", is_admin=True)  # may stop any thread (test_admins.py: who else may)
    ref, task = await running_answer(redis, slack)
    event = app_mention_event(f"<@{slack.bot_user_id}> Stop!", user="U0BOB", channel=CHANNEL, thread_ts=THREAD_TS)
    assert await dispatch(bot, event_envelope(event, team_id=slack.team_id)) == 200
    assert await redis.hget(SPACE.task(ref, task.task_id), "stop_by") == "U0BOB"
    assert await redis.lrange(SPACE.inbox(ref), 0, -1) == [task.task_id]  # nothing queued behind it
    elsewhere = app_mention_event(f"<@{slack.bot_user_id}> stop", user="U0BOB", channel=CHANNEL, thread_ts=new_ts())
    assert await dispatch(bot, event_envelope(elsewhere, team_id=slack.team_id)) == 200
    posted = [(call["thread_ts"], call["markdown_text"]) for call in slack.calls_to("chat.postMessage")]
    assert posted == [(THREAD_TS, "Stopping…"), (elsewhere["thread_ts"], "Nothing is running here.")]


async def command_answer(bot: Bot, slack: FakeSlack, text: str) -> str:
    """The ephemeral text `/agent TEXT` is acknowledged with."""
    form = slash_command_form("/agent", text, team_id=slack.team_id, channel_id=CHANNEL, user_id="U0BOB")
    response = await dispatch_command(bot, form)
    assert response.status == 200
    return str(json.loads(response.body)["text"])


async def test_agent_stop_needs_a_link_and_says_what_it_did(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """`/agent stop` asks which thread; with a link it stops that thread's answer, or says nothing runs there."""
    slack.add_message(CHANNEL, "a long story", user="U0BOB", ts=THREAD_TS)  # U0BOB started the thread
    assert (await command_answer(bot, slack, "stop")).startswith("Which thread?")
    link = f"<https://fake-team.slack.com/archives/{CHANNEL}/p{THREAD_TS.replace('.', '')}>"
    assert (await command_answer(bot, slack, f"stop {link}")).startswith("Nothing is running in")
    ref, task = await running_answer(redis, slack)
    assert (await command_answer(bot, slack, f"stop {link}")).startswith("Stopping the answer in")
    assert await redis.hget(SPACE.task(ref, task.task_id), "stop_by") == "U0BOB"
    assert "stopping already (<@U0BOB> asked)" in await command_answer(bot, slack, f"stop {link}")
