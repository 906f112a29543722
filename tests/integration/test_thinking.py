"""Adaptive thinking through the running bot: thinking goes back to the API whole, survives a kill -9, and is never
shown in Slack nor remembered in the thread."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.stored import window_text

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
THINKING = {"THINKING": "adaptive", "THINKING_EFFORT": "high"}
PLAN = "PRIVATE-THOUGHT: the thread may say more; read it before answering."
ANSWER = "Alice asked about the launch date."


def mention(slack: FakeSlack, text: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    """An Events API envelope of a mention of the bot (stored in the fake Slack too, as Slack has it)."""
    return slack.post_user_message(
        CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=thread_ts, mention=True
    )


def replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    return [str(m.get("text", "")) for m in slack.bot_replies(CHANNEL, thread_ts)]


def sent_back_thinking(request: dict[str, Any]) -> dict[str, Any]:
    """The first block of the assistant turn before the tool results that end a request."""
    assert request["messages"][-1]["content"][0]["type"] == "tool_result"
    block: dict[str, Any] = request["messages"][-2]["content"][0]
    return block


def nothing_private_in_slack(slack: FakeSlack) -> bool:
    """No call the bot made to Slack (posts, updates, streams, task updates) carries any thinking."""
    return not any("PRIVATE-THOUGHT" in json.dumps(call.args, default=str) for call in slack.calls)


async def test_a_thinking_tool_loop_answers_without_showing_its_thinking(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """With THINKING=adaptive, the call after a tool result carries the signed thinking of the call before (the fake
    refuses it otherwise); Slack shows only the answer, and the thread remembers only the answer."""
    claude.reply_tool_use("read_thread", {"limit": 5}, thinking=PLAN)
    claude.reply_text(ANSWER, thinking="PRIVATE-THOUGHT: the thread answers it.")
    bot = make_bot(ANTHROPIC_MODEL="claude-sonnet-4-6", **THINKING)  # a model that returns its thinking's text
    await bot.start()
    envelope = mention(slack, "what did I ask?")
    await bot.post_event(envelope)
    ts = envelope["event"]["ts"]
    await wait_until(lambda: replies(slack, ts) == [ANSWER], timeout=15)
    first, second = claude.requests
    for request in (first, second):
        assert request["thinking"] == {"type": "adaptive"} and request["output_config"] == {"effort": "high"}
    block = sent_back_thinking(second)
    assert block["type"] == "thinking" and block["thinking"] == PLAN and block["signature"]
    assert nothing_private_in_slack(slack)
    await wait_until(lambda: window_text(redis, ThreadRef(slack.team_id, CHANNEL, ts)), timeout=5)
    remembered = await window_text(redis, ThreadRef(slack.team_id, CHANNEL, ts))
    assert ANSWER in remembered and "PRIVATE-THOUGHT" not in remembered


async def test_a_task_killed_after_a_thinking_tool_call_resumes_with_the_thinking_intact(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Killed (kill -9) after the tool result of a call that thought was journaled, the resumed task's next call
    carries that call's thinking block exactly as the API wrote it: on the default model, omitted (empty text) and
    signed, which the fake checks."""
    claude.reply_tool_use("read_thread", {"limit": 5}, thinking=PLAN)
    claude.reply_text(ANSWER)
    bot = make_bot(BOT_CRASH_AT="tool.done", **THINKING)
    await bot.start()
    envelope = mention(slack, "what did I ask?")
    await bot.post_event(envelope)
    assert await asyncio.wait_for(bot.process.wait(), 15) == -9  # type: ignore[union-attr]
    restarted = make_bot(**THINKING)
    await restarted.start()
    ts = envelope["event"]["ts"]
    await wait_until(lambda: replies(slack, ts) == [ANSWER], timeout=15)
    assert len(claude.requests) == 2  # the thinking call is not made again
    block = sent_back_thinking(claude.requests[-1])
    assert block["type"] == "thinking" and block["thinking"] == "" and block["signature"]
    assert nothing_private_in_slack(slack)
