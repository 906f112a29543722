"""`/agent` through the running bot process: resets that stop work cleanly, and the confirmation buttons."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from store.models import ThreadRef
from tests.fakes import (
    FakeAnthropic,
    FakeSlack,
    block_actions_form,
    slash_command_form,
    wait_until,
)
from tests.integration.harness import BotProcess
from tests.integration.stored import SPACE, queue_empty, turns

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
OTHER_CHANNEL = "C0RANDOM"
NOTE = "reset this thread's agent"


def mention(slack: FakeSlack, text: str, *, channel: str = CHANNEL, thread_ts: str | None = None) -> dict[str, Any]:
    return slack.post_user_message(
        channel, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=thread_ts, mention=True
    )


def link(thread_ts: str, channel: str = CHANNEL) -> str:
    return f"<https://fake-team.slack.com/archives/{channel}/p{thread_ts.replace('.', '')}>"


def replies(slack: FakeSlack, thread_ts: str, channel: str = CHANNEL) -> list[str]:
    return [str(m.get("text")) for m in slack.bot_replies(channel, thread_ts)]


async def command(bot: BotProcess, slack: FakeSlack, text: str) -> tuple[dict[str, Any], str]:
    """Run `/agent TEXT` in CHANNEL; returns the acknowledgement's body and the command's response_url."""
    url = slack.response_url()
    form = slash_command_form(
        "/agent", text, team_id=slack.team_id, channel_id=CHANNEL, user_id="U0ALICE", response_url=url
    )
    status, body = await bot.post_command(form)
    assert status == 200
    return json.loads(body), url


async def click(bot: BotProcess, slack: FakeSlack, action_id: str) -> str:
    """Click a button of the channel-reset confirmation; returns the response_url its answer goes to."""
    payload, url = slack.click_ephemeral_button(action_id, CHANNEL, channel=CHANNEL, user="U0ALICE")
    status, _ = await bot.post_command(block_actions_form(payload))
    assert status == 200
    return url


async def answer_at(slack: FakeSlack, url: str) -> dict[str, Any]:
    """The answer posted to a response_url once it is not the "Resetting every agent…" progress note."""
    return await slack.response_at(url, unless=lambda body: str(body["text"]).startswith("Resetting every agent"))


async def answered_thread(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, channel: str = CHANNEL) -> str:
    """A thread whose agent has answered once; returns its ts."""
    claude.reply_text("first answer")
    root = mention(slack, "hello", channel=channel)
    await bot.post_event(root)
    thread_ts = str(root["event"]["ts"])
    await wait_until(lambda: replies(slack, thread_ts, channel) == ["first answer"], timeout=10)
    return thread_ts


@pytest.mark.parametrize("how", ["slash command", "mention in the thread"])
@pytest.mark.both_redis
async def test_a_reset_during_a_running_answer_stops_it_and_leaves_the_thread_clean(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis, how: str
) -> None:
    gate = asyncio.Event()
    claude.reply_text("the answer nobody should see", gate=gate)
    root = mention(slack, "start a long job")
    await bot.post_event(root)
    thread_ts = str(root["event"]["ts"])
    await wait_until(lambda: len(claude.requests) == 1 and replies(slack, thread_ts), timeout=10)
    [placeholder] = slack.bot_replies(CHANNEL, thread_ts)

    if how == "slash command":
        ack, _ = await command(bot, slack, f"reset {link(thread_ts)}")
        assert "Reset the agent of" in ack["text"] and "work in progress was stopped" in ack["text"]
    else:
        await bot.post_event(mention(slack, "reset", thread_ts=thread_ts))
    await wait_until(lambda: any(NOTE in text for text in replies(slack, thread_ts)), timeout=10)
    assert replies(slack, thread_ts) == [
        f"<@U0ALICE> {NOTE}: I have forgotten what was said here. Mention me to start afresh."
    ]
    assert placeholder["ts"] in [deleted["ts"] for deleted in slack.deletes]

    gate.set()  # the model answers now; the cancelled task must not post it or remember it
    await asyncio.sleep(1.5)
    assert not any("nobody should see" in str(update.get("text")) for update in slack.updates)
    assert len(replies(slack, thread_ts)) == 1
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    assert not await redis.exists(SPACE.state(ref))  # no agent, so no turns either
    await wait_until(lambda: queue_empty(redis), timeout=10)  # the reset task ran and its entry was released

    # The next mention starts afresh: nothing of the cancelled conversation reaches the model.
    claude.reply_text("fresh start")
    await bot.post_event(mention(slack, "hello again", thread_ts=thread_ts))
    await wait_until(lambda: "fresh start" in replies(slack, thread_ts), timeout=10)
    assert "start a long job" not in json.dumps(claude.requests[-1])


@pytest.mark.both_redis
async def test_channel_reset_asks_and_cancel_changes_nothing_confirm_resets_this_channel_only(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    slack.add_user("U0ALICE", "alice", is_admin=True)  # a channel-wide reset is for admins (test_admins.py)
    first = await answered_thread(bot, slack, claude)
    second = await answered_thread(bot, slack, claude)
    elsewhere = await answered_thread(bot, slack, claude, channel=OTHER_CHANNEL)

    ack, _ = await command(bot, slack, "reset")
    assert "Reset *every* agent" in ack["text"] and any(block["type"] == "actions" for block in ack["blocks"])

    cancelled = await answer_at(slack, await click(bot, slack, "agent_reset_channel_cancel"))
    assert cancelled["text"] == "Cancelled: nothing was reset."
    ack, _ = await command(bot, slack, "status")
    assert ack["text"].startswith("2 agent(s)") and "1 alive (web.1)" in json.dumps(ack["blocks"])

    confirmed = await answer_at(slack, await click(bot, slack, "agent_reset_channel_confirm"))
    # The channel's agents are reset by a task of its own, one thread after the other: each thread is told.
    assert confirmed["text"].startswith(f"Resetting 2 agent(s) of <#{CHANNEL}>")
    for thread_ts in (first, second):
        await wait_until(lambda ts=thread_ts: any(NOTE in text for text in replies(slack, ts)), timeout=10)
        ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
        assert not await redis.exists(SPACE.state(ref))  # no agent, so no turns either
    assert len(await turns(redis, ThreadRef(slack.team_id, OTHER_CHANNEL, elsewhere))) == 2
    assert replies(slack, elsewhere, OTHER_CHANNEL) == ["first answer"]
    await wait_until(lambda: queue_empty(redis), timeout=10)  # the channel's reset and each thread's are done
    ack, _ = await command(bot, slack, "status")
    assert "No agents" in ack["text"]


@pytest.mark.both_redis
async def test_status_mentioned_in_a_thread_is_posted_there(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    thread_ts = await answered_thread(bot, slack, claude)
    await bot.post_event(mention(slack, "status", thread_ts=thread_ts))
    status = await wait_until(lambda: [t for t in replies(slack, thread_ts) if t.startswith("*Agent status:*")])
    assert "Turns: 2" in status[0] and "Tasks done: 1, stopped: 0, failed: 0" in status[0]
    assert len(claude.requests) == 1  # a status is not a question for the model
