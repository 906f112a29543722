"""Scenario tests of people's controls over schedules: `/agent status` lists them, `/agent schedules` cancels and
resumes them (by button or by id), and only the people who may are obeyed."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.runtime.app import Bot, build_bot
from handlers.schedule_views import CANCEL_SCHEDULE, RESUME_SCHEDULE
from store.keys import KeySpace
from store.models import ThreadRef
from store.schedules import Schedule, ScheduleSpec, ScheduleStore
from tests.fakes import FakeSlack, block_actions_form, slash_command_form
from tests.unit.handlers.scenario import dispatch_command, settings_for
from tests.unit.handlers.test_command_listeners import CHANNEL, OTHER_CHANNEL, link, shown

MINUTE = 60.0
NOTE = "check whether the deploy is green"


@pytest.fixture
def bot(slack: FakeSlack, redis: Redis) -> Bot:
    """The app with U0ADMIN among ADMIN_USER_IDS; everyone else is no admin of the workspace."""
    for user, name in (("U0ALICE", "alice"), ("U0BOB", "bob"), ("U0MALLORY", "mallory")):
        slack.add_user(user, name)
    return build_bot(settings_for(slack, admin_user_ids="U0ADMIN"), redis)


def store(redis: Redis) -> ScheduleStore:
    """The schedules the bot reads (default shards and limits)."""
    return ScheduleStore(redis, KeySpace())


def thread_by(slack: FakeSlack, user: str = "U0ALICE", channel: str = CHANNEL) -> ThreadRef:
    """A thread `user` started in the fake Slack."""
    return ThreadRef(slack.team_id, channel, slack.add_message(channel, "we deploy at noon", user=user))


async def schedule(
    redis: Redis, thread: ThreadRef, *, by: str = "U0ALICE", note: str = NOTE, at: float = 30 * MINUTE, **more: Any
) -> Schedule:
    """A schedule of `thread`, made for `by`, first due `at` seconds from now."""
    return await store(redis).create(ScheduleSpec(thread, time.time() + at, note, by, **more), time.time())


async def run(bot: Bot, slack: FakeSlack, text: str, user: str = "U0ADMIN") -> dict[str, Any]:
    """The ephemeral answer of `/agent TEXT` run by `user` in CHANNEL."""
    form = slash_command_form(
        "/agent", text, team_id=slack.team_id, channel_id=CHANNEL, user_id=user, response_url=slack.response_url()
    )
    response = await dispatch_command(bot, form)
    assert response.status == 200
    body: dict[str, Any] = json.loads(response.body)
    assert body["response_type"] == "ephemeral"
    return body


def buttons(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every button of an answer's blocks."""
    return [
        element
        for block in body.get("blocks", [])
        if block["type"] == "actions"
        for element in block["elements"]
        if element["type"] == "button"
    ]


async def click(
    bot: Bot, slack: FakeSlack, button: dict[str, Any], user: str, channel: str = CHANNEL
) -> dict[str, Any]:
    """`user` clicks `button` of a listing shown in `channel`; the answer that replaces the listing."""
    payload, url = slack.click_ephemeral_button(button["action_id"], button["value"], channel=channel, user=user)
    response = await dispatch_command(bot, block_actions_form(payload))
    assert response.status == 200
    return await slack.response_at(url, timeout=5)


def slack_date(at: float) -> str:
    """How a time starts in Slack's date formatting."""
    return f"<!date^{int(at)}^{{date_short_pretty}} at {{time}}|"


async def test_channel_status_lists_the_channels_schedules_with_next_run_and_thread(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """Soonest first: next run in Slack's date formatting, once or every, the note's start, a link to the thread;
    another channel's schedule is not listed."""
    first, second = thread_by(slack), thread_by(slack)
    once = await schedule(redis, first, at=30 * MINUTE)
    every = await schedule(redis, second, note="post what changed", at=10 * MINUTE, every=10 * MINUTE, count=6)
    await schedule(redis, thread_by(slack, channel=OTHER_CHANNEL), note="elsewhere")
    text = shown(await run(bot, slack, "status"))
    assert "Scheduled follow-ups (2)" in text
    assert text.index(every.schedule_id) < text.index(once.schedule_id)
    assert slack_date(every.next_at) in text and slack_date(once.next_at) in text
    assert "every 10 min (0 of 6 runs done)" in text and "once" in text
    assert f"“{NOTE}”" in text and "post what changed" in text and "elsewhere" not in text
    assert f"archives/{CHANNEL}/p{second.thread_ts.replace('.', '')}" in text


async def test_thread_status_lists_its_schedules_and_a_paused_one_says_so(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """`/agent status <link>` shows that thread's schedules only (here a thread whose agent is gone: they are shown
    all the same); a schedule paused by failures says so instead of a next run."""
    thread, other = thread_by(slack), thread_by(slack)
    slack.add_message(CHANNEL, "a reply", user="U0BOB", thread_ts=thread.thread_ts)
    paused = await schedule(redis, thread, every=10 * MINUTE)
    for n in range(3):  # SCHEDULE_MAX_FAILURES' default
        await store(redis).record_outcome(thread, paused.schedule_id, f"sched-run-{n}", ok=False)
    await schedule(redis, other, note="not this thread's")
    text = shown(await run(bot, slack, f"status {link(thread.thread_ts)}"))
    assert "Scheduled follow-ups (1)" in text and "*paused* after 3 failed run(s) in a row" in text
    assert "not this thread's" not in text and "no agent" in text


async def test_a_long_list_is_bounded_and_counts_the_rest(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Twelve schedules: the ten soonest are shown, and "and 2 more"."""
    for n in range(12):
        await schedule(redis, thread_by(slack), note=f"note number {n:02d}", at=(n + 1) * MINUTE)
    text = shown(await run(bot, slack, "status"))
    assert "note number 09" in text and "note number 10" not in text and "…and 2 more" in text


async def test_schedules_lists_each_with_cancel_and_a_paused_one_with_resume(
    bot: Bot, slack: FakeSlack, redis: Redis
) -> None:
    """`/agent schedules`: one Cancel button per schedule (with Slack's confirmation), Resume only on the paused one."""
    thread = thread_by(slack)
    await schedule(redis, thread)
    paused = await schedule(redis, thread, every=10 * MINUTE)
    for n in range(3):
        await store(redis).record_outcome(thread, paused.schedule_id, f"sched-run-{n}", ok=False)
    body = await run(bot, slack, "schedules", user="U0MALLORY")  # anyone may look
    found = buttons(body)
    assert [b["action_id"] for b in found].count(CANCEL_SCHEDULE) == 2
    [resume] = [b for b in found if b["action_id"] == RESUME_SCHEDULE]
    assert resume["value"] == f"{CHANNEL}:{thread.thread_ts}:{paused.schedule_id}"
    assert all("confirm" in b for b in found if b["action_id"] == CANCEL_SCHEDULE)


async def test_the_creator_cancels_by_button_and_the_thread_is_told(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Bob, who is not in the thread and no admin, made the schedule: his click cancels it, the listing is replaced
    by the updated one, and the thread gets a short note naming him."""
    thread = thread_by(slack)
    made = await schedule(redis, thread, by="U0BOB")
    [cancel] = buttons(await run(bot, slack, "schedules", user="U0BOB"))
    answer = await click(bot, slack, cancel, "U0BOB")
    assert answer["replace_original"] and f"Cancelled `{made.schedule_id}`" in answer["text"]
    assert await store(redis).list_thread(thread) == []
    [told] = [m["text"] for m in slack.bot_replies(CHANNEL, thread.thread_ts)]
    assert told.startswith("<@U0BOB> cancelled a scheduled follow-up here") and NOTE in told


async def test_someone_who_wrote_in_the_thread_cancels_by_id(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """`/agent schedules cancel ID` by a person who wrote in the schedule's thread cancels it."""
    thread = thread_by(slack)
    slack.add_message(CHANNEL, "me too", user="U0BOB", thread_ts=thread.thread_ts)
    made = await schedule(redis, thread)
    body = await run(bot, slack, f"schedules cancel {made.schedule_id}", user="U0BOB")
    assert body["text"].startswith(f"Cancelled `{made.schedule_id}`")
    assert await store(redis).list_thread(thread) == []


async def test_a_person_who_may_not_is_refused_by_id_and_by_button(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """Mallory neither made the schedule nor wrote in its thread nor is an admin: by id and by a button she got hold
    of, nothing is cancelled, and she is told who may."""
    thread = thread_by(slack)
    made = await schedule(redis, thread)
    body = await run(bot, slack, f"schedules cancel {made.schedule_id}", user="U0MALLORY")
    assert body["text"].startswith("Only <@U0ADMIN>") and "<@U0ALICE>, who it was made for, may too" in body["text"]
    [cancel] = buttons(await run(bot, slack, "schedules"))
    answer = await click(bot, slack, cancel, "U0MALLORY")
    assert answer["text"].startswith("Only <@U0ADMIN>")
    assert [s.schedule_id for s in await store(redis).list_thread(thread)] == [made.schedule_id]
    assert slack.bot_replies(CHANNEL, thread.thread_ts) == []


async def test_a_button_shown_in_another_channel_changes_nothing(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """A click whose button names another channel than the one it was clicked in is refused (like the channel
    reset's buttons)."""
    thread = thread_by(slack)
    await schedule(redis, thread)
    [cancel] = buttons(await run(bot, slack, "schedules"))
    answer = await click(bot, slack, cancel, "U0ADMIN", channel=OTHER_CHANNEL)
    assert answer["text"] == "That button belongs to another channel: nothing was changed."
    assert len(await store(redis).list_thread(thread)) == 1


async def test_resume_puts_a_paused_schedule_back(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """An admin's click on Resume: the schedule is active again with its next run after now."""
    thread = thread_by(slack)
    paused = await schedule(redis, thread, at=-15 * MINUTE, every=10 * MINUTE)
    for n in range(3):
        await store(redis).record_outcome(thread, paused.schedule_id, f"sched-run-{n}", ok=False)
    [resume] = [b for b in buttons(await run(bot, slack, "schedules")) if b["action_id"] == RESUME_SCHEDULE]
    answer = await click(bot, slack, resume, "U0ADMIN")
    assert answer["text"].startswith(f"Resumed `{paused.schedule_id}`, next <!date^")
    [resumed] = await store(redis).list_thread(thread)
    assert not resumed.paused and resumed.next_at > time.time()
    assert RESUME_SCHEDULE not in json.dumps(answer["blocks"])


async def test_an_unknown_id_and_bad_words_say_what_to_do(bot: Bot, slack: FakeSlack, redis: Redis) -> None:
    """An id the channel has not: the listing, saying so; other words: the usage."""
    body = await run(bot, slack, "schedules cancel 0123456789")
    assert "no follow-up `0123456789`" in body["text"]
    body = await run(bot, slack, "schedules frobnicate")
    assert body["text"].startswith("`/agent schedules` lists")
