"""How answers appear in Slack: streamed into the one reply message, with a working indicator on the mention."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.fakes import FakeAnthropic, FakeSlack, Reply, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
ANSWER = " ".join(f"Sentence number {n} of a long and thoughtful answer." for n in range(60))


def mention(slack: FakeSlack, text: str) -> dict[str, Any]:
    return slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", mention=True)


def slow_answer(text: str = ANSWER) -> Reply:
    """An answer that streams in over about four seconds."""
    return Reply([{"type": "text", "text": text}], "end_turn", chunk_size=40, chunk_delay=0.05)


def reactions(slack: FakeSlack, method: str, ts: str) -> list[str]:
    return [str(args.get("name")) for args in slack.calls_to(method) if args.get("timestamp") == ts]


async def test_an_answer_streams_into_its_one_message_and_the_indicator_comes_and_goes(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.enqueue(slow_answer())
    envelope = mention(slack, "tell me everything")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: [m for m in slack.bot_replies(CHANNEL, thread_ts) if m.get("text") == ANSWER], timeout=20)
    [reply] = slack.bot_replies(CHANNEL, thread_ts)  # one message, updated in place
    shown = [str(update["text"]) for update in slack.updates if update.get("ts") == reply["ts"]]
    previews = [text.removesuffix(" ✍️") for text in shown[:-1]]
    assert len(previews) >= 2, shown  # the answer appeared progressively...
    assert all(ANSWER.startswith(text) for text in previews)  # ...each time a longer start of it...
    assert [len(p) for p in previews] == sorted(len(p) for p in previews)
    assert shown[-1] == ANSWER  # ...and ends as the whole answer, with no marker left
    assert reactions(slack, "reactions.add", thread_ts) == ["eyes"]
    assert reactions(slack, "reactions.remove", thread_ts) == ["eyes"]


async def test_the_indicator_is_cleared_when_the_answer_fails(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.reply_error(401, "authentication_error", "invalid x-api-key")
    envelope = mention(slack, "hello")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: reactions(slack, "reactions.remove", thread_ts), timeout=10)
    assert "ANTHROPIC_API_KEY" in str(slack.bot_replies(CHANNEL, thread_ts)[0].get("text"))


async def test_a_crash_mid_stream_finishes_the_same_message(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.enqueue(Reply([{"type": "text", "text": ANSWER}], "end_turn", chunk_size=20, chunk_delay=0.2))
    claude.reply_text("the whole answer, at last")
    bot = make_bot()
    await bot.start()
    envelope = mention(slack, "tell me everything")
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: any(str(u.get("text")).endswith("✍️") for u in slack.updates), timeout=15)
    await bot.kill()  # mid-stream: part of the answer is showing
    restarted = make_bot()
    await restarted.start()
    await wait_until(
        lambda: [m.get("text") for m in slack.bot_replies(CHANNEL, thread_ts)] == ["the whole answer, at last"],
        timeout=20,
    )
    await asyncio.sleep(0.5)
    assert len(slack.bot_replies(CHANNEL, thread_ts)) == 1
