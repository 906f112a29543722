"""The agent messaging experience through the real bot process: the Messages tab's prompts, titles people give."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from store.connection import RedisClient
from store.models import ThreadRef
from store.titles import SessionTitles, TitleMark
from tests.fakes import FakeSlack, event_envelope, new_ts, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess

METHOD = "assistant.threads.setSuggestedPrompts"

pytestmark = pytest.mark.integration

PROMPTS = [{"title": "Plan a trip", "message": "Help me plan a three-day trip."}, "What is new in Python 3.14?"]


def tab_opened(slack: FakeSlack, user: str, channel: str) -> dict[str, Any]:
    """The envelope of `user` opening the Messages tab of their DM `channel` with the app."""
    event = {"type": "app_home_opened", "user": user, "channel": channel, "tab": "messages"}
    return event_envelope({**event, "event_ts": f"{time.time():.6f}"}, team_id=slack.team_id)


async def test_the_messages_tab_shows_the_configured_prompts(make_bot: BotFactory, slack: FakeSlack) -> None:
    """Opening the Messages tab pins SUGGESTED_PROMPTS to that DM (no thread_ts), once per person however often
    they open it."""
    slack.agent_features = True
    bot = make_bot(SUGGESTED_PROMPTS=json.dumps(PROMPTS))
    await bot.start()
    for user, channel in (("U0ALICE", "D0ALICE"), ("U0ALICE", "D0ALICE"), ("U0BOB", "D0BOB")):
        assert await bot.post_event(tab_opened(slack, user, channel)) == 200
    await wait_until(lambda: {call["channel_id"] for call in slack.calls_to(METHOD)} == {"D0ALICE", "D0BOB"})
    calls = slack.calls_to(METHOD)
    assert len(calls) == 2 and not any("thread_ts" in call for call in calls)
    second = {"title": PROMPTS[1], "message": PROMPTS[1]}
    assert all(call["prompts"] == [PROMPTS[0], second] for call in calls)


async def test_an_app_that_is_no_agent_says_so_once(bot: BotProcess, slack: FakeSlack) -> None:
    """Slack's not_agent_app (a manifest without agent_view) is one log line that names the fix, not an error."""
    slack.agent_features = True
    slack.fail_next(METHOD, error="not_agent_app", times=2)
    for user in ("U0ALICE", "U0BOB"):
        assert await bot.post_event(tab_opened(slack, user, f"D{user}")) == 200
    await wait_until(lambda: len(slack.calls_to(METHOD)) == 2 and "not_agent_app" in bot.output())
    assert bot.output().count("not_agent_app") == 1 and "agent_view" in bot.output()
    assert "Traceback" not in bot.output()


@pytest.mark.both_redis
async def test_a_title_a_person_gives_is_kept(bot: BotProcess, slack: FakeSlack, redis: RedisClient) -> None:
    """agent_session_title_changed is recorded before the ack: the bot can no longer claim that session's title."""
    thread = ThreadRef(slack.team_id, "D0ALICE", new_ts())
    event = {
        "type": "agent_session_title_changed",
        "channel": thread.channel_id,
        "thread_ts": thread.thread_ts,
        "title": "Lisbon in May",
        "previous_title": "Where should I go in May?",
        "team_id": slack.team_id,
        "user": "U0ALICE",
        "event_ts": f"{time.time():.6f}",
    }
    assert await bot.post_event(event_envelope(event, team_id=slack.team_id)) == 200
    titles = SessionTitles(redis)
    assert await titles.mark(thread) == TitleMark("person", "Lisbon in May", "U0ALICE")
    assert not await titles.claim_title(thread)
