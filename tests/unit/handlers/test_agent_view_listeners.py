"""Scenario tests of the agent-view listeners: the Messages tab's prompts, and session titles people give."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.runtime.app import Bot, build_bot
from handlers.agent_view_listeners import OncePerWindow
from handlers.suggested_prompts import PROMPTS_HEADING, parse_suggested_prompts
from store.connection import connect
from store.models import ThreadRef
from store.titles import SessionTitles, TitleMark
from tests.fakes import FakeSlack, event_envelope, wait_until
from tests.unit.handlers.scenario import dispatch, settings_for

METHOD = "assistant.threads.setSuggestedPrompts"

SESSION_TS = "1782234671.392669"


@pytest.fixture(autouse=True)
def fake_speaks_suggested_prompts(slack: FakeSlack) -> None:
    """The fake Slack answers setSuggestedPrompts."""
    slack.agent_features = True


def tab_opened(slack: FakeSlack, user: str, channel: str, tab: str = "messages") -> dict[str, Any]:
    """The envelope of `user` opening a tab of their DM `channel` with the app, as Slack sends it."""
    event = {"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": f"{time.time():.6f}"}
    return event_envelope(event, team_id=slack.team_id)


def title_changed(slack: FakeSlack, title: str, *, user: str = "U0ALICE", **fields: Any) -> dict[str, Any]:
    """The envelope of agent_session_title_changed: `user` renamed the session of a DM thread."""
    event = {
        "type": "agent_session_title_changed",
        "channel": "D0ALICE",
        "thread_ts": SESSION_TS,
        "title": title,
        "previous_title": "What is a monad?",
        "team_id": slack.team_id,
        "user": user,
        "event_ts": f"{time.time():.6f}",
        **fields,
    }
    return event_envelope({k: v for k, v in event.items() if v is not None}, team_id=slack.team_id)


async def test_opening_the_messages_tab_pins_the_prompts(bot: Bot, slack: FakeSlack) -> None:
    """app_home_opened on the Messages tab sets the prompts of that DM, with their heading and no thread_ts."""
    assert await dispatch(bot, tab_opened(slack, "U0ALICE", "D0ALICE")) == 200
    [call] = await wait_until(lambda: slack.calls_to(METHOD))
    expected = [prompt.as_slack() for prompt in parse_suggested_prompts(bot.settings.suggested_prompts)]
    assert (call["channel_id"], call["prompts"], call["title"]) == ("D0ALICE", expected, PROMPTS_HEADING)
    assert "thread_ts" not in call  # with one, an agent app's call silently fails


async def test_each_person_gets_the_call_once_per_window(bot: Bot, slack: FakeSlack) -> None:
    """Slack sends the event on every opening: a person's second opening makes no call; another person's does,
    and the Home tab never does."""
    for user, channel, tab in (
        ("U0ALICE", "D0ALICE", "messages"),
        ("U0ALICE", "D0ALICE", "messages"),
        ("U0BOB", "D0BOB", "home"),
        ("U0BOB", "D0BOB", "messages"),
    ):
        assert await dispatch(bot, tab_opened(slack, user, channel, tab)) == 200
    await wait_until(lambda: len(slack.calls_to(METHOD)) == 2)
    await asyncio.sleep(0.05)  # room for a wrong third call to arrive
    assert [call["channel_id"] for call in slack.calls_to(METHOD)] == ["D0ALICE", "D0BOB"]


async def test_the_ack_does_not_wait_for_slack(bot: Bot, slack: FakeSlack) -> None:
    """The call runs after the acknowledgement, so a slow or rate-limited Slack cannot hold the ack."""
    slack.delay(METHOD, 3.0)
    started = time.monotonic()
    assert await dispatch(bot, tab_opened(slack, "U0ALICE", "D0ALICE")) == 200
    assert time.monotonic() - started < 1.0
    await wait_until(lambda: slack.calls_to(METHOD))


async def test_errors_are_logged_once_and_never_raised(
    bot: Bot, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    """An app not declared an agent gets not_agent_app: one INFO line naming the fix, however many people open the
    tab; another error gets its own line."""
    caplog.set_level(logging.DEBUG, logger="handlers.agent_view_listeners")
    slack.fail_next(METHOD, error="not_agent_app", times=3)
    slack.fail_next(METHOD, error="channel_not_found")
    for number in range(4):
        assert await dispatch(bot, tab_opened(slack, f"U0USER{number}", f"D0USER{number}")) == 200
    await wait_until(lambda: len([r for r in caplog.records if "suggested prompts" in r.getMessage()]) == 4)
    lines = [r for r in caplog.records if r.levelno == logging.INFO and "suggested prompts" in r.getMessage()]
    assert [("not_agent_app" in r.getMessage(), "agent_view" in r.getMessage()) for r in lines] == [
        (True, True),
        (False, False),
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_no_prompts_means_no_call(slack: FakeSlack, redis: Redis) -> None:
    """SUGGESTED_PROMPTS=[] leaves the Messages tab alone."""
    bot = build_bot(settings_for(slack, suggested_prompts="[]"), redis)
    assert await dispatch(bot, tab_opened(slack, "U0ALICE", "D0ALICE")) == 200
    await asyncio.sleep(0.1)
    assert slack.calls_to(METHOD) == []


async def test_a_title_a_person_gives_is_recorded(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """agent_session_title_changed from a person records their title, so the bot never renames that session."""
    assert await dispatch(bot, title_changed(slack, "Monads, slowly")) == 200
    titles = SessionTitles(redis)
    thread = ThreadRef(slack.team_id, "D0ALICE", SESSION_TS)
    assert await titles.mark(thread) == TitleMark("person", "Monads, slowly", "U0ALICE")
    assert not await titles.claim_title(thread)


async def test_the_bots_own_rename_and_malformed_events_record_nothing(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """The event for the bot's own rename, or one without its thread, is acknowledged and changes nothing."""
    assert await dispatch(bot, title_changed(slack, "What is a monad?", user=slack.bot_user_id)) == 200
    assert await dispatch(bot, title_changed(slack, "No thread", thread_ts=None)) == 200
    assert await redis.dbsize() == 0


async def test_a_title_redis_did_not_take_is_not_acknowledged(slack: FakeSlack) -> None:
    """If Redis cannot record a person's title the request fails (500), so Slack delivers the event again."""
    dead = connect("redis://127.0.0.1:9/0")
    try:
        bot = build_bot(settings_for(slack), dead)
        assert await dispatch(bot, title_changed(slack, "Monads, slowly")) == 500
    finally:
        await dead.aclose()


def test_once_per_window_forgets_after_the_window_and_stays_bounded() -> None:
    """A key is let through again once its window has passed, and the oldest keys go past the bound."""
    now = [0.0]
    seen = OncePerWindow(600, max_keys=2, clock=lambda: now[0])
    assert seen.first_in_window("a") and not seen.first_in_window("a")
    now[0] = 300
    assert seen.first_in_window("b")
    now[0] = 600
    assert seen.first_in_window("a") and not seen.first_in_window("b")  # a's window is over, b's is not
    assert seen.first_in_window("c")  # over the bound: b, the oldest, goes
    assert seen.first_in_window("b")
