"""Scenario tests: signed Slack requests dispatched through the real Bolt app into intake and Redis."""

from __future__ import annotations

import logging

import pytest
from redis.asyncio import Redis

from bot.runtime.app import Bot, build_bot
from store.connection import connect
from store.models import ThreadRef
from tests.fakes import FakeSlack, app_mention_event, event_envelope, message_event
from tests.unit.handlers.scenario import dispatch, settings_for

CHANNEL = "C0GENERAL"


def mention(slack: FakeSlack, text: str = "hello", **fields: object) -> dict[str, object]:
    event = app_mention_event(f"<@{slack.bot_user_id}> {text}", user="U0ALICE", channel=CHANNEL)
    event.update(fields)
    return event_envelope(event, team_id=slack.team_id)


async def test_mention_is_recorded_before_the_ack(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """An app_mention is a queued task by the time Bolt answers 200."""
    envelope = mention(slack)
    assert await dispatch(bot, envelope) == 200
    thread = ThreadRef(slack.team_id, CHANNEL, str(envelope["event"]["ts"]))  # type: ignore[index]
    assert await redis.lrange(bot.space.inbox(thread), 0, -1) == [envelope["event_id"]]
    assert await redis.hget(bot.space.task(thread, str(envelope["event_id"])), "text") == "hello"


async def test_bad_signature_is_rejected_and_records_nothing(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """A request signed with another secret gets 401 and leaves Redis empty."""
    assert await dispatch(bot, mention(slack), secret="wrong-secret") == 401
    assert await redis.dbsize() == 0


async def test_retried_event_is_recorded_once(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Slack's redeliveries of one event_id are acknowledged and make no second task."""
    envelope = mention(slack)
    assert await dispatch(bot, envelope) == 200
    for attempt in (1, 2, 3):
        assert await dispatch(bot, envelope, retry_num=attempt, retry_reason="http_timeout") == 200
    thread = ThreadRef(slack.team_id, CHANNEL, str(envelope["event"]["ts"]))  # type: ignore[index]
    assert sum([await redis.xlen(queue) for queue in bot.space.queues()]) == 1
    assert await redis.xlen(bot.space.thread_queue(thread)) == 1
    assert await redis.llen(bot.space.inbox(thread)) == 1


async def test_unreachable_redis_means_no_ack(slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    """When Redis cannot take the task the request fails (500), so Slack delivers it again; the log says so in one
    line, without a traceback."""
    dead = connect("redis://127.0.0.1:9/0")
    try:
        bot = build_bot(settings_for(slack), dead)
        assert await dispatch(bot, mention(slack)) == 500
    finally:
        await dead.aclose()
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING and "`token` will be unused" not in r.msg]
    assert [(r.name, r.exc_info is None) for r in problems] == [("handlers.listener_errors", True)]
    assert "Redis did not take a request" in problems[0].getMessage()


async def test_command_words_become_their_own_tasks(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """'@bot status' and '@bot reset' are recorded as status and reset tasks, not questions."""
    for word in ("status", "Reset!"):
        envelope = mention(slack, word)
        await dispatch(bot, envelope)
        thread = ThreadRef(slack.team_id, CHANNEL, str(envelope["event"]["ts"]))  # type: ignore[index]
        kind = await redis.hget(bot.space.task(thread, str(envelope["event_id"])), "kind")
        assert kind == word.lower().strip("!")


async def test_message_events_that_are_not_for_the_bot(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Edits, bot posts, top-level chatter and the message copy of a mention record nothing."""
    edited = message_event("x", user="U0ALICE", channel=CHANNEL, thread_ts="1.000001", subtype="message_changed")
    from_bot = message_event("x", user="U0OTHER", channel=CHANNEL, thread_ts="1.000001", bot_id="B0OTHER")
    top_level = message_event("x", user="U0ALICE", channel=CHANNEL)
    copy_of_mention = message_event(f"<@{slack.bot_user_id}> hi", user="U0ALICE", channel=CHANNEL)
    for event in (edited, from_bot, top_level, copy_of_mention):
        assert await dispatch(bot, event_envelope(event, team_id=slack.team_id)) == 200
    assert await redis.dbsize() == 0


async def test_malformed_event_is_acknowledged_and_logged(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """A mention without a ts cannot be a task: it is dropped with a warning rather than retried forever."""
    envelope = mention(slack)
    del envelope["event"]["ts"]  # type: ignore[attr-defined]
    assert await dispatch(bot, envelope) == 200
    assert await redis.dbsize() == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"files": [{"id": "F1", "url_private": "https://files.slack.com/x", "size": "big"}]},
        {"files": [{"id": "F1", "url_private": "https://files.slack.com/x", "size": [1]}]},
        {"channel": "C0:GEN"},  # a ':' cannot be part of a thread's key
        {"thread_ts": 1700000000.1},  # Slack's timestamps are strings
        {"subtype": [1]},
    ],
)
async def test_a_signed_event_of_a_shape_slack_never_sends_is_acknowledged_with_one_warning(
    bot: Bot, slack: FakeSlack, redis: Redis, caplog: pytest.LogCaptureFixture, fields: dict[str, object]
) -> None:
    """A mention whose fields have shapes Slack never sends gets 200 (a retry would be no better), records nothing
    and logs one WARNING and no ERROR."""
    assert await dispatch(bot, mention(slack, **fields)) == 200
    assert await redis.dbsize() == 0
    noted = [(r.levelname, r.name) for r in caplog.records if r.levelno >= logging.WARNING]
    assert noted == [("WARNING", "handlers.event_listeners")]


async def test_only_allowed_bots_are_heard(slack: FakeSlack, redis: Redis) -> None:
    """ALLOWED_BOT_IDS lets named bots talk to the agent; every other bot, and the bot itself, is ignored."""
    bot = build_bot(settings_for(slack, allowed_bot_ids="B0FRIEND, B0OTHERFRIEND"), redis)
    friend = app_mention_event(f"<@{slack.bot_user_id}> from a friend", user="U0FRIEND", channel=CHANNEL)
    friend["bot_id"] = "B0FRIEND"
    stranger = app_mention_event(f"<@{slack.bot_user_id}> from a stranger", user="U0STRANGER", channel=CHANNEL)
    stranger["bot_id"] = "B0STRANGER"
    itself = app_mention_event(f"<@{slack.bot_user_id}> echo of my own post", user=slack.bot_user_id, channel=CHANNEL)
    itself["bot_id"] = "B0FRIEND"  # even listed, the bot's own user never talks to itself
    recorded = []
    for event in (friend, stranger, itself):
        envelope = event_envelope(event, team_id=slack.team_id)
        assert await dispatch(bot, envelope) == 200
        thread = ThreadRef(slack.team_id, CHANNEL, str(event["ts"]))
        recorded.append(await redis.exists(bot.space.task(thread, str(envelope["event_id"]))))
    assert recorded == [1, 0, 0]


async def test_a_mentions_action_token_is_kept_with_its_answer_task(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """The action token of a mention (what lets the answer search Slack as its writer) is stored with its task; one
    that does not look like Slack's is not stored at all."""
    kept = mention(slack, action_token="12345.98765.abcd2358fdea")
    odd = mention(slack, "again", action_token="x" * 300)
    for envelope in (kept, odd):
        assert await dispatch(bot, envelope) == 200
    stored = [
        await redis.hget(
            bot.space.task(ThreadRef(slack.team_id, CHANNEL, str(e["event"]["ts"])), str(e["event_id"])),  # type: ignore[index]
            "action_token",
        )
        for e in (kept, odd)
    ]
    assert stored == ["12345.98765.abcd2358fdea", None]


async def test_a_thread_messages_action_token_is_not_kept(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """A later message of a thread is remembered, not answered: its action token is not stored with it."""
    started = mention(slack)
    assert await dispatch(bot, started) == 200
    thread_ts = str(started["event"]["ts"])  # type: ignore[index]
    note = message_event("the budget is 42", user="U0BOB", channel=CHANNEL, thread_ts=thread_ts)
    note["action_token"] = "1.2.note"
    envelope = event_envelope(note, team_id=slack.team_id)
    assert await dispatch(bot, envelope) == 200
    task_key = bot.space.task(ThreadRef(slack.team_id, CHANNEL, thread_ts), str(envelope["event_id"]))
    assert await redis.hget(task_key, "text") == "the budget is 42"
    assert await redis.hget(task_key, "action_token") is None
