"""An uninstall through the running bot: the workspace's answer under way and its queued mention stop silently."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis

from store import keys
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, wait_until
from tests.integration.harness import BotProcess
from tests.integration.stored import SPACE

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
# Long and slow: 75 pieces, one every 0.2 s, so 15 s unless cancelled.
SLOW_ANSWER = " ".join(f"word{number:03d}" for number in range(75))
CHAT_WRITES = ("chat.postMessage", "chat.update", "chat.delete", "chat.appendStream", "chat.stopStream")


def mention(slack: FakeSlack, text: str, *, thread_ts: str | None = None) -> dict[str, Any]:
    """An Events API envelope of a mention of the bot (the message is stored in the fake too)."""
    return slack.post_user_message(CHANNEL, f"<@{slack.bot_user_id}> {text}", thread_ts=thread_ts, mention=True)


def replies(slack: FakeSlack, thread_ts: str) -> list[str]:
    """Texts of the bot's messages in the thread."""
    return [str(message.get("text", "")) for message in slack.bot_replies(CHANNEL, thread_ts)]


def chat_writes_tried(slack: FakeSlack) -> int:
    """How many message writes the bot has tried, accepted or not (a revoked token's are refused, but counted)."""
    return sum(1 for call in slack.calls if call.method in CHAT_WRITES)


async def test_an_uninstall_cancels_the_running_answer_and_the_queued_mention_silently(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Uninstalled while a long answer streams and a mention waits behind it: the bot tries no further write, never
    asks the model for the queued one, both tasks end cancelled, and the workspace is marked as left."""
    claude.enqueue(Reply([{"type": "text", "text": SLOW_ANSWER}], chunk_delay=0.2))
    claude.reply_text("the queued one's answer")
    root = mention(slack, "tell me a long story")
    thread_ts = str(root["event"]["ts"])
    assert await bot.post_event(root) == 200
    await wait_until(lambda: any("word00" in text for text in replies(slack, thread_ts)), timeout=20)
    queued = mention(slack, "and then?", thread_ts=thread_ts)
    assert await bot.post_event(queued) == 200

    for envelope in slack.uninstall(slack.team_id):
        assert await bot.post_event(envelope) == 200
    uninstalled = time.monotonic()

    ref = ThreadRef(slack.team_id, CHANNEL, thread_ts)
    for event in (root, queued):
        assert await redis.hget(SPACE.task(ref, str(event["event_id"])), "status") == "cancelled"
    assert await redis.exists(keys.team_left(slack.team_id))
    await wait_until(lambda: time.monotonic() - uninstalled > 0.5, timeout=5)  # a write already on its way lands
    writes = chat_writes_tried(slack)
    await wait_until(lambda: time.monotonic() - uninstalled > 3.0, timeout=5)  # what a running answer would write
    assert chat_writes_tried(slack) == writes, "the bot tried to write to Slack after the uninstall"
    assert len(claude.requests) == 1, "the queued mention was sent to the model"
    assert "the queued one's answer" not in replies(slack, thread_ts)
    assert "the app was uninstalled from" in bot.output()
