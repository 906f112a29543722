"""Scenario tests: direct messages filed under the agent of their own DM thread."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.runtime.app import Bot
from store.models import ThreadRef
from tests.fakes import FakeSlack, event_envelope, message_event
from tests.unit.handlers.scenario import dispatch

DM = "D0DM"


async def test_a_top_level_dm_starts_a_thread_and_a_reply_goes_to_it(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """A top-level DM is a task of the thread at its own ts; a reply in that thread is a task of the same thread."""
    top = message_event("first question", user="U0ALICE", channel=DM, channel_type="im")
    reply = message_event("and then?", user="U0ALICE", channel=DM, channel_type="im", thread_ts=top["ts"])
    for event in (top, reply):
        assert await dispatch(bot, event_envelope(event, team_id=slack.team_id)) == 200
    thread = ThreadRef(slack.team_id, DM, str(top["ts"]))
    inbox = await redis.lrange(bot.space.inbox(thread), 0, -1)
    assert len(inbox) == 2
    kinds = [await redis.hget(bot.space.task(thread, task_id), "kind") for task_id in inbox]
    assert kinds == ["answer", "answer"]  # a DM reply needs no mention to be a question
    assert await redis.exists(bot.space.inbox(ThreadRef(slack.team_id, DM, ""))) == 0  # no DM-wide agent any more
