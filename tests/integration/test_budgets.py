"""Admins and daily budgets through the running bot process: who may reset a channel, and a budget that stops the
next mention until `/agent limits` raises it."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from store import keys
from store.models import ThreadRef
from store.spend import Payer, SpendStore
from store.threads import ThreadStore
from tests.fakes import FakeAnthropic, FakeSlack, block_actions_form, slash_command_form, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess
from tests.integration.stored import SPACE, queue_empty, window_text
from tests.integration.test_metrics import samples, value

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
RESET_NOTE = "reset this thread's agent"
# Each answer below reports 1,000 output tokens: $0.015 at Sonnet's price, over a one-cent budget.
COSTLY = {"output_tokens": 1000}


def mention(slack: FakeSlack, text: str, user: str, thread_ts: str | None = None) -> dict[str, Any]:
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user=user, thread_ts=thread_ts, mention=True
    )


def replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [str(m.get("text")) for m in slack.bot_replies(CHANNEL, thread_ts)]


async def command(bot: BotProcess, slack: FakeSlack, text: str, user: str) -> dict[str, Any]:
    """Run `/agent TEXT` as `user` in CHANNEL; the acknowledgement's body."""
    form = slash_command_form(
        "/agent", text, team_id=slack.team_id, channel_id=CHANNEL, user_id=user, response_url=slack.response_url()
    )
    status, body = await bot.post_command(form)
    assert status == 200
    answer: dict[str, Any] = json.loads(body)
    return answer


async def confirm(bot: BotProcess, slack: FakeSlack, user: str) -> str:
    """Click the channel reset's *Reset* button as `user`; the text finally posted to its response_url."""
    payload, url = slack.click_ephemeral_button("agent_reset_channel_confirm", CHANNEL, channel=CHANNEL, user=user)
    status, _ = await bot.post_command(block_actions_form(payload))
    assert status == 200
    # The buttons are replaced at once by "Resetting every agent of <#C>…"; the outcome follows.
    body = await slack.response_at(url, unless=lambda body: str(body["text"]).endswith("…"))
    return str(body["text"])


async def answered(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, user: str, text: str) -> str:
    """A new thread where `user` asked and was answered `text`; its ts."""
    claude.reply_text(text, usage=COSTLY)
    root = mention(slack, "hello", user)
    await bot.post_event(root)
    thread_ts = str(root["event"]["ts"])
    await wait_until(lambda: replies(slack, thread_ts) == [text], timeout=10)
    return thread_ts


async def test_a_non_admins_channel_reset_is_refused_and_an_admins_works(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """A member gets a line naming who may instead of the question, and their click on Reset resets nothing; a
    workspace admin (users.info's is_admin) is asked, confirms, and every thread of the channel is reset."""
    slack.add_user("U0BOB", "bob")
    slack.add_user("U0ADA", "ada", is_admin=True)
    thread_ts = await answered(bot, slack, claude, "U0BOB", "first answer")

    refused = await command(bot, slack, "reset", "U0BOB")
    assert refused["text"] == "Only the workspace's admins and owners may reset every agent of a channel."
    assert "blocks" not in refused
    assert (await confirm(bot, slack, "U0BOB")).startswith("Only the workspace's admins and owners")
    await asyncio.sleep(0.5)
    assert replies(slack, thread_ts) == ["first answer"]  # no reset note: nothing was reset

    asked = await command(bot, slack, "reset", "U0ADA")
    assert "Reset *every* agent" in asked["text"] and any(block["type"] == "actions" for block in asked["blocks"])
    assert (await confirm(bot, slack, "U0ADA")).startswith(f"Resetting 1 agent(s) of <#{CHANNEL}>")
    await wait_until(lambda: any(RESET_NOTE in text for text in replies(slack, thread_ts)), timeout=10)
    assert "<@U0ADA> reset this thread's agent" in replies(slack, thread_ts)[-1]
    await wait_until(lambda: queue_empty(redis), timeout=10)


@pytest.mark.both_redis
async def test_a_used_up_budget_stops_the_next_mention_until_an_admin_raises_it(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """With a one-cent budget a person, the first answer (1.5 cents) uses it up: the next mention is told which
    budget, what was spent and when it resets, and Claude is not called; another person is still answered; a
    non-admin cannot raise it, the admin can with `/agent limits`, and the next mention is answered again."""
    bot = make_bot(DAILY_BUDGET_USD_PER_USER="0.01", MAX_OUTPUT_TOKENS="64", ADMIN_USER_IDS="U0ROOT")
    await bot.start()
    thread_ts = await answered(bot, slack, claude, "U0ALICE", "first answer")
    calls = len(claude.requests)

    await bot.post_event(mention(slack, "and another thing", "U0ALICE", thread_ts))
    await wait_until(lambda: "budget" in replies(slack, thread_ts)[-1], timeout=10)
    refusal = replies(slack, thread_ts)[1]
    assert "your daily budget of $0.0100 a person" in refusal and "spent today" in refusal
    assert "It resets at midnight UTC, in " in refusal and "`/agent limits`" in refusal
    await wait_until(lambda: queue_empty(redis), timeout=10)
    assert len(claude.requests) == calls  # no model call for the refused mention
    refused = value(await samples(bot), "slack_agent_mentions_total", outcome="refused", reason="budget")
    assert refused == 1

    status = json.dumps(await command(bot, slack, "status", "U0ALICE"))
    assert "You $0.0" in status and "of $0.0100" in status

    other = await answered(bot, slack, claude, "U0BOB", "bob's answer")  # Bob has a budget of his own
    assert replies(slack, other) == ["bob's answer"]

    assert (await command(bot, slack, "limits user_daily_usd 1", "U0ALICE"))["text"].startswith("Only <@U0ROOT>")
    raised = await command(bot, slack, "limits user_daily_usd 1", "U0ROOT")
    assert raised["text"].startswith("`user_daily_usd` is now $1.00.")
    assert await redis.hget(keys.limits(slack.team_id), "user_daily_usd") == "1.0"

    claude.reply_text("answered again")
    await bot.post_event(mention(slack, "now?", "U0ALICE", thread_ts))
    await wait_until(lambda: "answered again" in replies(slack, thread_ts), timeout=10)


async def test_an_answer_that_reaches_the_budget_midway_ends_with_what_it_wrote_and_the_message(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """The first call fits a one-cent channel budget before it is made, writes 1.5 cents' worth and stops at
    max_tokens; the call that would continue the answer does not fit, so it is not made: the reply keeps what was
    written and ends with the budget's message, and the thread remembers both."""
    bot = make_bot(DAILY_BUDGET_USD_PER_CHANNEL="0.01", MAX_OUTPUT_TOKENS="64")
    await bot.start()
    claude.reply_text("The first half of a long answer", stop_reason="max_tokens", usage=COSTLY)
    claude.reply_text("never written")
    root = mention(slack, "tell me everything", "U0ALICE")
    await bot.post_event(root)
    thread_ts = str(root["event"]["ts"])
    await wait_until(lambda: queue_empty(redis), timeout=10)
    [reply] = replies(slack, thread_ts)
    assert reply.startswith("The first half of a long answer")
    assert "I stopped here: my next step could pass this channel's daily budget of $0.0100" in reply
    assert len(claude.requests) == 1 and "never written" not in reply
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    assert "I stopped here" in await window_text(redis, ref)


async def test_the_spend_counted_against_the_budgets_is_what_the_thread_records(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """An answer and then notes long enough to fold the window (a summary call, for the notes' author): the day's
    spend of the workspace and the channel equals the usage the bot records for the channel, to the micro-dollar,
    and the summaries of the notes count for the person who wrote them."""
    bot = make_bot(CONTEXT_TOKEN_BUDGET="8000", SUMMARY_MAX_TOKENS="1000", DAILY_BUDGET_USD_PER_WORKSPACE="100")
    await bot.start()
    thread_ts = await answered(bot, slack, claude, "U0ALICE", "noted")
    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    for n in range(12):
        note = f"note {n}: " + "the build log goes on with lines nobody needs to read again. " * 70
        await bot.post_event(slack.post_user_message(CHANNEL, note, user="U0NOTER", thread_ts=thread_ts))
    await wait_until(lambda: queue_empty(redis), timeout=30)
    assert await redis.hget(SPACE.state(ref), "summary")  # the notes folded the window at least once
    recorded = await ThreadStore(redis, SPACE).channel_usage(slack.team_id, CHANNEL)
    spend = await SpendStore(redis).spent(Payer(slack.team_id, CHANNEL, "U0NOTER"), time.time())
    assert spend.workspace == spend.channel == recorded.cost_microusd > 0
    assert 0 < spend.user < spend.channel  # the notes' summaries: Alice's answer is hers
