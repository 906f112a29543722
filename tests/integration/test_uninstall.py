"""An uninstall through the running bot: the workspace's answer under way and its queued mention stop silently."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from playground.slack_oauth import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from store import keys
from store.models import ThreadRef
from tests.fakes import FakeAnthropic, FakeSlack, Reply, wait_until
from tests.integration.harness import BotProcess, free_port
from tests.integration.stored import SPACE
from tests.integration.test_oauth_install import (
    REDIRECT_PATH,
    browse,
    open_install_page,
    slack_redirect,
    stored_bot_token,
)

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


@pytest.mark.both_redis
async def test_an_uninstall_cancels_the_running_answer_and_the_queued_mention_silently(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Uninstalled while a long answer streams and a mention waits behind it (single-workspace mode): the bot tries
    no further write, never asks the model for the queued one, and both tasks end cancelled."""
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
    await wait_until(lambda: time.monotonic() - uninstalled > 0.5, timeout=5)  # a write already on its way lands
    writes = chat_writes_tried(slack)
    await wait_until(lambda: time.monotonic() - uninstalled > 3.0, timeout=5)  # what a running answer would write
    assert chat_writes_tried(slack) == writes, "the bot tried to write to Slack after the uninstall"
    assert len(claude.requests) == 1, "the queued mention was sent to the model"
    assert "the queued one's answer" not in replies(slack, thread_ts)
    assert "the app was uninstalled from" in bot.output()


@pytest.fixture
async def oauth_web_only(bot_env: dict[str, str], slack: FakeSlack, tmp_path: Path) -> AsyncIterator[BotProcess]:
    """A bot in OAuth mode that takes Slack's requests and runs no task (so each workspace's work stays queued:
    answering through each workspace's own token is not built yet), killed at the end."""
    env = {name: value for name, value in bot_env.items() if name != "SLACK_BOT_TOKEN"}
    env |= {"SLACK_CLIENT_ID": DEFAULT_CLIENT_ID, "SLACK_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}
    env |= {"PORT": str(free_port()), "RUN_WORKERS_IN_WEB": "false"}
    bot = BotProcess(env, tmp_path)
    slack.redirect_urls = [bot.url + REDIRECT_PATH]
    await bot.start()
    yield bot
    if bot.process is not None and bot.process.returncode is None:
        await bot.kill()
    print(f"----- {bot.log_path.name} -----\n{bot.output()}")  # shown by pytest only when the test fails


async def install(bot: BotProcess, slack: FakeSlack, team_id: str) -> None:
    """Install the app into a new workspace of the emulator through the bot's install page and redirect."""
    slack.add_workspace(team_id)
    link, cookie = await open_install_page(bot)
    page = await browse(await slack_redirect(slack, link, team_id), cookie)
    assert page.status == 200, page.text


async def test_an_uninstall_in_oauth_mode_leaves_the_other_workspace_alone(
    oauth_web_only: BotProcess, slack: FakeSlack, redis: Redis
) -> None:
    """Two workspaces with a queued mention each; the first uninstalls: its installation is gone and its task
    cancelled, while the second keeps its installation, its queued task and its thread's place in the queue."""
    bot = oauth_web_only
    queued: dict[str, ThreadRef] = {}
    event_ids: dict[str, str] = {}
    for team_id in ("T0FIRST", "T0SECOND"):
        await install(bot, slack, team_id)
        with slack.as_workspace(team_id):
            envelope = mention(slack, "hello")
        assert await bot.post_event(envelope) == 200
        queued[team_id] = ThreadRef(team_id, CHANNEL, str(envelope["event"]["ts"]))
        event_ids[team_id] = str(envelope["event_id"])

    for envelope in slack.uninstall("T0FIRST"):
        assert await bot.post_event(envelope) == 200

    assert await stored_bot_token(redis, "T0FIRST") is None
    assert not await redis.exists(keys.installations("T0FIRST"))
    assert await stored_bot_token(redis, "T0SECOND") is not None
    first, second = queued["T0FIRST"], queued["T0SECOND"]
    assert await redis.hget(SPACE.task(first, event_ids["T0FIRST"]), "status") == "cancelled"
    assert await redis.hget(SPACE.task(second, event_ids["T0SECOND"]), "status") == "queued"
    assert await redis.lrange(SPACE.inbox(second), 0, -1) == [event_ids["T0SECOND"]]
    assert await redis.exists(SPACE.queued(second)) and not await redis.exists(SPACE.queued(first))
    assert await redis.exists(keys.team_left("T0FIRST")) and not await redis.exists(keys.team_left("T0SECOND"))
