"""Upgrading in place: the real bot started on data the previous release wrote (layout v1) moves it and goes on.

The data is tests/fixtures/layout_v1/data.json, written by the previous release's own code: agents with turns
and a summary, tasks queued and tasks that were running when their worker died, channel indexes and usage.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from store import keys_v1
from store.keys import KeySpace
from store.models import ThreadRef
from store.threads import ThreadStore
from tests.fakes import FakeAnthropic, FakeSlack, app_mention_event, event_envelope, new_ts, user_texts, wait_until
from tests.integration.conftest import BotFactory
from tests.unit.store.test_migrate import fixture, restore

pytestmark = pytest.mark.integration
FOLDED = ThreadRef("T1", "C1", "1700000000.000100")  # two answers, the first folded into the summary
QUEUED_FIRST_ANSWER = ThreadRef("T1", "C1", "1700000300.000400")  # "any news?", queued, never started
RUNNING_WHEN_DIED = ThreadRef("T2", "C9", "1700000600.000700")  # "translate this": its model call done, then web.1 died


def seed_slack(slack: FakeSlack) -> None:
    """Put in the fake Slack what real Slack holds for the dataset: every task's message, and the bot's reply
    to it where the old release recorded one (each in its thread)."""
    for row in fixture().values():
        task = row["value"]
        if row["type"] != "hash" or not isinstance(task, dict) or "message_ts" not in task:
            continue
        ref = ThreadRef.decode(task["thread"])
        thread = {"thread_ts": ref.thread_ts} if ref.thread_ts and ref.thread_ts != task["message_ts"] else {}
        message = {"type": "message", "ts": task["message_ts"], "text": task["text"], "user": task["user_id"]}
        slack.store.insert(ref.channel_id, {**message, "team": ref.team_id, **thread})
        if task.get("reply_ts") and slack.store.get(ref.channel_id, task["reply_ts"]) is None:
            reply = {"type": "message", "ts": task["reply_ts"], "text": "(an answer)", "user": slack.bot_user_id}
            reply |= {"bot_id": slack.bot_id, "thread_ts": ref.thread_ts or task["message_ts"]}
            slack.store.insert(ref.channel_id, reply)


async def test_a_bot_started_on_the_previous_releases_data_answers_its_queued_work_once_and_remembers(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """The queued and interrupted answers of the previous release are answered once each, no key of the old
    layout is left, and a new mention in an old thread carries what its agent remembered."""
    await restore(redis)
    seed_slack(slack)
    bot = make_bot()
    await bot.start()

    def answer(ref: ThreadRef) -> str:
        replies = slack.bot_replies(ref.channel_id, ref.thread_ts)
        return str(replies[0].get("text")) if len(replies) == 1 else ""

    def answered() -> bool:
        return "Voici la traduction." in answer(RUNNING_WHEN_DIED) and answer(QUEUED_FIRST_ANSWER).startswith("echo")

    await wait_until(answered, timeout=20)
    asked = [" ".join(user_texts(request)) for request in claude.requests]
    assert sum("any news?" in text for text in asked) == 1
    # The interrupted answer's model call had completed: it comes from the journal, not from Claude again.
    assert not any("translate this" in text for text in asked)

    async def old_keys() -> list[str]:
        return [key async for key in redis.scan_iter(match="agent:*") if keys_v1.parse(key) is not None]

    for _ in range(100):  # the move runs in the background; it ends with the channels' indexes and totals
        if not await old_keys():
            break
        await asyncio.sleep(0.1)
    assert not await old_keys()

    state, turns = await ThreadStore(redis, KeySpace()).agent(FOLDED)
    assert state is not None and state.summary and turns
    ts = new_ts()
    mention = app_mention_event(
        f"<@{slack.bot_user_id}> and Q1?",
        user="U0ALICE",
        channel=FOLDED.channel_id,
        ts=ts,
        thread_ts=FOLDED.thread_ts,
        team=FOLDED.team_id,
    )
    assert await bot.post_event(event_envelope(mention, team_id=FOLDED.team_id)) == 200
    await wait_until(lambda: any("and Q1?" in " ".join(user_texts(r)) for r in claude.requests), timeout=10)
    request = next(r for r in claude.requests if "and Q1?" in " ".join(user_texts(r)))
    everything = str(request)
    assert state.summary[:40] in everything, "the summary the old release wrote is not in the request"
    assert turns[-1].text[:40] in everything, "the window the old release kept is not in the request"
