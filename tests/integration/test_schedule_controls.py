"""People's controls over schedules through the running process: status lists them with their next run, and
`/agent schedules` cancels them by button and by id, for those who may only."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from bot.core.clock import advance
from store.schedules import ScheduleSpec
from tests.fakes import FakeAnthropic, FakeSlack, block_actions_form, slash_command_form, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.test_commands import link
from tests.integration.test_timers import (
    CHANNEL,
    MINUTE,
    NOTE,
    answer_each_note,
    replies,
    schedules,
    start_thread,
    timer_env,
)

pytestmark = pytest.mark.integration


async def run(bot: BotProcess, slack: FakeSlack, text: str, user: str) -> dict[str, Any]:
    """The acknowledgement of `/agent TEXT` run by `user` in CHANNEL."""
    form = slash_command_form(
        "/agent", text, team_id=slack.team_id, channel_id=CHANNEL, user_id=user, response_url=slack.response_url()
    )
    status, body = await bot.post_command(form)
    assert status == 200
    answer: dict[str, Any] = json.loads(body)
    return answer


async def click_cancel(
    bot: BotProcess, slack: FakeSlack, listing: dict[str, Any], schedule_id: str, user: str
) -> dict[str, Any]:
    """`user` clicks the Cancel button of schedule `schedule_id` in a listing; the answer that replaces it."""
    [cancel] = [
        element
        for block in listing["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "agent_schedule_cancel" and element["value"].endswith(f":{schedule_id}")
    ]
    payload, url = slack.click_ephemeral_button(cancel["action_id"], cancel["value"], channel=CHANNEL, user=user)
    status, _ = await bot.post_command(block_actions_form(payload))
    assert status == 200
    return await slack.response_at(url)


def shown(body: dict[str, Any]) -> str:
    """The text and blocks of an answer."""
    return body["text"] + json.dumps(body.get("blocks", []), ensure_ascii=False)


@pytest.mark.both_redis
async def test_status_lists_a_threads_and_a_channels_schedules_with_their_next_run(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """`/agent status` lists both threads' schedules, `/agent status <link>` and `@bot status` the thread's own, each
    with its next run in Slack's date formatting; once a run fired, the recurring one's next run moved on."""
    claude.set_default(answer_each_note)
    first, second = start_thread(slack, "first"), start_thread(slack, "second")
    store, now = schedules(redis), time.time()
    once = await store.create(ScheduleSpec(first, now + 30 * MINUTE, NOTE, "U0ALICE"), now)
    every = await store.create(ScheduleSpec(second, now + 10 * MINUTE, "post a digest", "U0ALICE", every=600), now)
    bot = make_bot(**timer_env(tmp_path))
    await bot.start()
    channel = shown(await run(bot, slack, "status", "U0ALICE"))
    assert "Scheduled follow-ups (2)" in channel and f"<!date^{int(every.next_at)}^" in channel
    assert f"<!date^{int(once.next_at)}^" in channel and "every 10 min" in channel and NOTE in channel
    thread = shown(await run(bot, slack, f"status {link(second.thread_ts)}", "U0ALICE"))
    assert "Scheduled follow-ups (1)" in thread and "post a digest" in thread and NOTE not in thread

    advance(tmp_path / "clock", 10 * MINUTE)
    await wait_until(lambda: replies(slack, second) == ["ran: post a digest"], timeout=15)
    envelope = slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> status", user="U0ALICE", thread_ts=second.thread_ts, mention=True
    )
    assert await bot.post_event(envelope) == 200
    [status] = await wait_until(lambda: [t for t in replies(slack, second) if t.startswith("*Agent status:*")])
    assert f"next <!date^{int(every.next_at + 600)}^" in status and "1 run(s) so far" in status


@pytest.mark.both_redis
async def test_schedules_cancel_by_button_and_by_id_and_a_stranger_is_refused(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, tmp_path: Path
) -> None:
    """A stranger's click and `cancel ID` change nothing; the creator's click cancels one and its thread is told; an
    admin cancels the other by id; neither fires when its time comes."""
    claude.set_default(answer_each_note)
    slack.add_user("U0MALLORY", "mallory")
    slack.add_user("U0BOB", "bob")
    first, second = start_thread(slack, "first"), start_thread(slack, "second")
    store, now = schedules(redis), time.time()
    bobs = await store.create(ScheduleSpec(first, now + 10 * MINUTE, "bob's check", "U0BOB"), now)
    other = await store.create(ScheduleSpec(second, now + 10 * MINUTE, "alice's check", "U0ALICE"), now)
    bot = make_bot(**timer_env(tmp_path, ADMIN_USER_IDS="U0ADMIN"))
    await bot.start()

    refused = await run(bot, slack, f"schedules cancel {other.schedule_id}", "U0MALLORY")
    assert refused["text"].startswith("Only <@U0ADMIN>")
    listing = await run(bot, slack, "schedules", "U0BOB")
    refused = await click_cancel(bot, slack, listing, bobs.schedule_id, "U0MALLORY")
    assert refused["text"].startswith("Only <@U0ADMIN>") and len(await store.list_channel(slack.team_id, CHANNEL)) == 2

    cancelled = await click_cancel(bot, slack, listing, bobs.schedule_id, "U0BOB")
    assert cancelled["text"].startswith(f"Cancelled `{bobs.schedule_id}`")
    await wait_until(lambda: any("<@U0BOB> cancelled" in text for text in replies(slack, first)), timeout=10)
    by_id = await run(bot, slack, f"schedules cancel {other.schedule_id}", "U0ADMIN")
    assert by_id["text"].startswith(f"Cancelled `{other.schedule_id}`")
    assert await store.list_channel(slack.team_id, CHANNEL) == []

    advance(tmp_path / "clock", 20 * MINUTE)
    await asyncio.sleep(1.0)  # ten polls of the timer loop: nothing is due any more
    assert claude.requests == [] and not any("ran:" in t for t in replies(slack, first) + replies(slack, second))
