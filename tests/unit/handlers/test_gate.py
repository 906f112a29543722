"""Scenario tests of the gate: signed events dispatched through the real Bolt app, refused or queued in Redis."""

from __future__ import annotations

import re
from typing import Any

from redis.asyncio import Redis

from bot.runtime.app import Bot, build_bot
from store.connection import connect
from store.models import ThreadRef
from tests.fakes import FakeSlack, app_mention_event, event_envelope, message_event
from tests.unit.handlers.scenario import dispatch, settings_for
from tests.unit.metric_values import sample

CHANNEL = "C0GENERAL"
OTHER = "C0RANDOM"
FRIEND_BOT = "B0FRIEND"


def mention(
    slack: FakeSlack, text: str = "hello", *, user: str = "U0ALICE", channel: str = CHANNEL, **fields: Any
) -> dict[str, Any]:
    event = app_mention_event(f"<@{slack.bot_user_id}> {text}", user=user, channel=channel)
    event.update(fields)
    return event_envelope(event, team_id=slack.team_id)


def thread_of(slack: FakeSlack, envelope: dict[str, Any]) -> ThreadRef:
    event = envelope["event"]
    return ThreadRef(slack.team_id, event["channel"], event.get("thread_ts") or event["ts"])


async def queued(bot: Bot, redis: Redis, slack: FakeSlack, envelope: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, text) of each task waiting in the envelope's thread."""
    thread = thread_of(slack, envelope)
    found = []
    for task_id in await redis.lrange(bot.space.inbox(thread), 0, -1):
        kind, text = await redis.hmget(bot.space.task(thread, task_id), "kind", "text")
        found.append((kind, text))
    return found


def refused(reason: str) -> float:
    return sample("slack_agent_mentions_total", outcome="refused", reason=reason)


async def test_a_channel_outside_the_allow_list_is_told_once_a_day(slack: FakeSlack, redis: Redis) -> None:
    """In a channel not on ALLOWED_CHANNEL_IDS a mention queues only a notice that the bot is not enabled here; the
    same person's next mention there queues nothing; an allowed channel works as before. Each refusal is counted."""
    bot = build_bot(settings_for(slack, allowed_channel_ids=f"{CHANNEL}, dm"), redis)
    before = refused("not_allowed")
    first, second = mention(slack, channel=OTHER), mention(slack, "again?", channel=OTHER)
    for envelope in (first, second):
        assert await dispatch(bot, envelope) == 200
    [(kind, text)] = await queued(bot, redis, slack, first)
    assert kind == "notice" and "not enabled in this channel" in text
    assert await queued(bot, redis, slack, second) == []
    assert refused("not_allowed") - before == 2
    allowed = mention(slack, channel=CHANNEL)
    assert await dispatch(bot, allowed) == 200
    assert await queued(bot, redis, slack, allowed) == [("answer", "hello")]


async def test_a_redelivered_refusal_is_one_notice(slack: FakeSlack, redis: Redis) -> None:
    """Slack's redelivery of a refused mention is acknowledged, counted as a duplicate, and queues no second
    notice."""
    bot = build_bot(settings_for(slack, allowed_channel_ids=CHANNEL), redis)
    envelope = mention(slack, channel=OTHER)
    duplicates = sample("slack_agent_mentions_total", outcome="duplicate", reason="none")
    assert await dispatch(bot, envelope) == 200
    assert await dispatch(bot, envelope, retry_num=1, retry_reason="http_timeout") == 200
    assert [kind for kind, _ in await queued(bot, redis, slack, envelope)] == ["notice"]
    assert sample("slack_agent_mentions_total", outcome="duplicate", reason="none") - duplicates == 1


async def test_people_outside_the_user_allow_list_are_refused_and_allowed_bots_are_not(
    slack: FakeSlack, redis: Redis
) -> None:
    """With ALLOWED_USER_IDS set, another person gets the notice; a listed person, and a bot of ALLOWED_BOT_IDS (on
    its own allow-list), are answered."""
    settings = settings_for(slack, allowed_user_ids="U0ALICE", allowed_bot_ids=FRIEND_BOT)
    bot = build_bot(settings, redis)
    stranger, alice = mention(slack, user="U0MALLORY"), mention(slack, user="U0ALICE")
    friend = mention(slack, "from a bot", user="U0FRIENDBOT", bot_id=FRIEND_BOT)
    for envelope in (stranger, alice, friend):
        assert await dispatch(bot, envelope) == 200
    [(kind, text)] = await queued(bot, redis, slack, stranger)
    assert kind == "notice" and "not enabled for you" in text
    assert await queued(bot, redis, slack, alice) == [("answer", "hello")]
    assert await queued(bot, redis, slack, friend) == [("answer", "from a bot")]


async def test_direct_messages_need_dm_in_the_channel_allow_list(slack: FakeSlack, redis: Redis) -> None:
    """A DM is refused under a channel allow-list without `dm` (its id is per person), and answered with it."""
    for allowed, expected in ((CHANNEL, "notice"), (f"{CHANNEL},dm", "answer")):
        await redis.flushdb()
        bot = build_bot(settings_for(slack, allowed_channel_ids=allowed), redis)
        event = message_event("hi there", user="U0ALICE", channel="D0ALICE", channel_type="im")
        envelope = event_envelope(event, team_id=slack.team_id)
        assert await dispatch(bot, envelope) == 200
        [(kind, text)] = await queued(bot, redis, slack, envelope)
        assert kind == expected
        assert expected == "answer" or "not enabled in direct messages" in text


async def test_thread_messages_outside_the_allowed_channels_are_not_remembered(slack: FakeSlack, redis: Redis) -> None:
    """A thread message in a channel off the list is ignored without a word, even in a thread with work queued."""
    bot = build_bot(settings_for(slack, allowed_channel_ids=CHANNEL), redis)
    first = mention(slack, channel=OTHER)
    assert await dispatch(bot, first) == 200
    ts = first["event"]["ts"]
    note = message_event("just chatting", user="U0BOB", channel=OTHER, thread_ts=ts)
    assert await dispatch(bot, event_envelope(note, team_id=slack.team_id)) == 200
    assert [kind for kind, _ in await queued(bot, redis, slack, first)] == ["notice"]


async def test_the_rate_limit_per_person_trips_at_its_number_and_says_when(slack: FakeSlack, redis: Redis) -> None:
    """With RATE_LIMIT_PER_USER=2, a person's third mention in a minute is a notice saying when to try again, the
    fourth is refused without a word, and another person is not affected."""
    bot = build_bot(settings_for(slack, rate_limit_per_user=2), redis)
    before = refused("rate_limit")
    envelopes = [mention(slack, f"question {n}") for n in range(4)]
    for envelope in envelopes:
        assert await dispatch(bot, envelope) == 200
    assert [await queued(bot, redis, slack, e) for e in envelopes[:2]] == [
        [("answer", "question 0")],
        [("answer", "question 1")],
    ]
    [(kind, text)] = await queued(bot, redis, slack, envelopes[2])
    assert kind == "notice" and "limit of 2 mentions a minute" in text
    assert re.search(r"Try again in (59|60) s\.$", text)
    assert await queued(bot, redis, slack, envelopes[3]) == []
    assert refused("rate_limit") - before == 2
    bob = mention(slack, user="U0BOB")
    assert await dispatch(bot, bob) == 200
    assert await queued(bot, redis, slack, bob) == [("answer", "hello")]


async def test_slacks_redelivery_is_not_counted_twice(slack: FakeSlack, redis: Redis) -> None:
    """A mention Slack delivers three times takes one slot of a limit of two: the next mention is answered too, and
    a redelivery with the limit reached stays a duplicate, never a refusal."""
    bot = build_bot(settings_for(slack, rate_limit_per_user=2), redis)
    first = mention(slack, "once")
    for attempt in (0, 1, 2):
        retry = {"retry_num": attempt, "retry_reason": "http_timeout"} if attempt else {}
        assert await dispatch(bot, first, **retry) == 200
    second = mention(slack, "twice")
    assert await dispatch(bot, second) == 200
    assert await dispatch(bot, second, retry_num=1, retry_reason="http_timeout") == 200
    assert await queued(bot, redis, slack, first) == [("answer", "once")]
    assert await queued(bot, redis, slack, second) == [("answer", "twice")]


async def test_the_rate_limit_per_thread_counts_everyone_in_it(slack: FakeSlack, redis: Redis) -> None:
    """With RATE_LIMIT_PER_THREAD=2, a third mention in one thread within a minute is refused whoever writes it."""
    bot = build_bot(settings_for(slack, rate_limit_per_thread=2), redis)
    parent = mention(slack, "start")
    ts = parent["event"]["ts"]
    assert await dispatch(bot, parent) == 200
    assert await dispatch(bot, mention(slack, "more", user="U0BOB", thread_ts=ts)) == 200
    assert await dispatch(bot, mention(slack, "and more", user="U0CAROL", thread_ts=ts)) == 200
    kinds = [kind for kind, _ in await queued(bot, redis, slack, parent)]
    assert kinds == ["answer", "answer", "notice"]
    [notice] = [text for kind, text in await queued(bot, redis, slack, parent) if kind == "notice"]
    assert "This thread has reached its limit of 2 mentions a minute" in notice


async def test_a_stop_is_never_rate_limited(slack: FakeSlack, redis: Redis) -> None:
    """`@bot stop` past the rate limit still acts (it spends nothing and may be what halts a runaway answer)."""
    bot = build_bot(settings_for(slack, rate_limit_per_user=1), redis)
    first = mention(slack, "go")
    ts = first["event"]["ts"]
    slack.add_message(CHANNEL, "go", user="U0ALICE", ts=ts)  # she started the thread: hers to stop (test_admins.py)
    assert await dispatch(bot, first) == 200
    assert await dispatch(bot, mention(slack, "stop", thread_ts=ts)) == 200
    assert await queued(bot, redis, slack, first) == [("answer", "go")]
    assert [m.get("text") for m in slack.bot_replies(CHANNEL, ts)] == ["Nothing is running here."]


async def test_allowed_bots_stop_after_the_bot_turn_limit_and_people_do_not(slack: FakeSlack, redis: Redis) -> None:
    """With MAX_BOT_TURNS_PER_THREAD=2, an allowed bot's third mention in a thread is a notice and its fourth is
    ignored, while a person in the same thread is still answered."""
    bot = build_bot(settings_for(slack, allowed_bot_ids=FRIEND_BOT, max_bot_turns_per_thread=2), redis)
    before = refused("bot_turns")
    parent = mention(slack, "start")
    ts = parent["event"]["ts"]
    assert await dispatch(bot, parent) == 200
    for n in range(4):
        envelope = mention(slack, f"bot turn {n}", user="U0FRIENDBOT", thread_ts=ts, bot_id=FRIEND_BOT)
        assert await dispatch(bot, envelope) == 200
    assert await dispatch(bot, mention(slack, "a person again", thread_ts=ts)) == 200
    tasks = await queued(bot, redis, slack, parent)
    assert [kind for kind, _ in tasks] == ["answer", "answer", "answer", "notice", "answer"]
    assert "answered bots 2 times in this thread in the last hour" in tasks[3][1]
    assert refused("bot_turns") - before == 2


async def test_without_limits_the_gate_touches_no_redis_key(slack: FakeSlack, redis: Redis) -> None:
    """With every limit off and no allow-list, a mention writes only its task's keys: no rate log, no mark."""
    bot = build_bot(settings_for(slack, max_bot_turns_per_thread=0), redis)
    assert await dispatch(bot, mention(slack)) == 200
    assert not [key for key in await redis.keys("*") if ":rate:" in key or ":told:" in key]


async def test_a_redis_that_cannot_count_means_no_ack(slack: FakeSlack) -> None:
    """When Redis cannot count a mention against the limits, Slack gets 500 (and delivers the event again) and the
    failure is counted as an intake Redis error."""
    errors = sample("slack_agent_redis_errors_total", where="intake")
    dead = connect("redis://127.0.0.1:9/0")
    try:
        assert await dispatch(build_bot(settings_for(slack, rate_limit_per_user=5), dead), mention(slack)) == 500
    finally:
        await dead.aclose()
    assert sample("slack_agent_redis_errors_total", where="intake") - errors == 1
