"""Channel memory through the running process: shared by a channel's threads, kept from other channels and DMs,
written once through a kill -9, shown and cleared with `/agent memory`, kept through a thread reset."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from store.connection import RedisClient
from store.memory import MemoryChange, MemoryLimits, MemoryStore
from tests.fakes import FakeAnthropic, FakeSlack, slash_command_form, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess

pytestmark = pytest.mark.integration
CHANNEL = "C0GENERAL"
OTHER = "C0RANDOM"
FACT = "Ana leads the platform team."
MEMORY_TOOL = {"type": "memory_20250818", "name": "memory"}


def mention(slack: FakeSlack, text: str, channel: str = CHANNEL, thread_ts: str | None = None) -> dict[str, Any]:
    return slack.post_user_message(
        channel, f"<@{slack.bot_user_id}> {text}", user="U0ALICE", thread_ts=thread_ts, mention=True
    )


def replies(slack: FakeSlack, thread_ts: str, channel: str = CHANNEL) -> list[str]:
    return [str(m.get("text", "")) for m in slack.bot_replies(channel, thread_ts)]


async def ask(bot: BotProcess, slack: FakeSlack, text: str, answer: str, channel: str = CHANNEL) -> str:
    """Mention the bot in a new thread and wait for `answer` there; returns the thread's ts."""
    envelope = mention(slack, text, channel)
    await bot.post_event(envelope)
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: replies(slack, thread_ts, channel) == [answer], timeout=15)
    return thread_ts


def tool_results(request: dict[str, Any]) -> str:
    """The tool_result blocks of a request's last message, as JSON: what the model was shown."""
    content = request["messages"][-1]["content"]
    return json.dumps([block for block in content if block.get("type") == "tool_result"])


def memory_store(redis: RedisClient) -> MemoryStore:
    return MemoryStore(redis, MemoryLimits(), ttl_seconds=3600, applied_ttl_seconds=3600)


async def command(bot: BotProcess, slack: FakeSlack, text: str, channel: str = CHANNEL) -> dict[str, Any]:
    form = slash_command_form(
        "/agent", text, team_id=slack.team_id, channel_id=channel, user_id="U0ALICE", response_url=slack.response_url()
    )
    status, body = await bot.post_command(form)
    assert status == 200
    answer: dict[str, Any] = json.loads(body)
    return answer


async def test_a_fact_remembered_in_one_thread_is_seen_in_another_of_the_channel_only(
    bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Thread A stores a fact; thread B of the same channel reads it back; a thread of another channel finds
    nothing, and a DM is not even offered the tool."""
    claude.reply_tool_use("memory", {"command": "create", "path": "/memories/team.md", "file_text": FACT})
    claude.reply_text("Noted.")
    await ask(bot, slack, "remember who leads the team", "Noted.")
    assert MEMORY_TOOL in claude.requests[0]["tools"]
    assert "created" in tool_results(claude.requests[1])

    claude.reply_tool_use("memory", {"command": "view", "path": "/memories/team.md"})
    claude.reply_text("Ana does.")
    await ask(bot, slack, "who leads the team?", "Ana does.")
    assert FACT in tool_results(claude.last_request)

    claude.reply_tool_use("memory", {"command": "view", "path": "/memories/team.md"})
    claude.reply_text("I do not know.")
    await ask(bot, slack, "who leads the team?", "I do not know.", channel=OTHER)
    seen = tool_results(claude.last_request)
    assert FACT not in seen and "does not exist" in seen

    dm = slack.post_user_message("D0DM", "who leads the team?", user="U0ALICE", channel_type="im")
    await bot.post_event(dm)
    dm_ts = str(dm["event"]["ts"])
    await wait_until(lambda: any(text.startswith("echo:") for text in replies(slack, dm_ts, "D0DM")), timeout=15)
    [dm_request] = claude.requests[6:]
    assert all(tool.get("name") != "memory" for tool in dm_request.get("tools", []))
    assert FACT not in json.dumps(dm_request) and "/memories" not in json.dumps(dm_request["system"])


@pytest.mark.both_redis
async def test_killed_after_a_memory_write_applies_it_once(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient
) -> None:
    """Killed between the memory write and the journal's record of it, the resumed task runs the call again: the
    insert is not applied twice, and the model is shown the first run's result."""
    store, scope = memory_store(redis), f"{slack.team_id}:{CHANNEL}"
    await store.commit(scope, await store.snapshot(scope), MemoryChange({"/memories/log.md": "one\n"}, "ok"), None)
    claude.reply_tool_use(
        "memory", {"command": "insert", "path": "/memories/log.md", "insert_line": 1, "insert_text": "two"}
    )
    claude.reply_text("Logged.")
    crashing = make_bot(BOT_CRASH_AT="memory.written")
    await crashing.start()
    envelope = mention(slack, "log two")
    await crashing.post_event(envelope)
    assert await asyncio.wait_for(crashing.process.wait(), 15) == -9  # type: ignore[union-attr]
    assert (await store.snapshot(scope)).files == {"/memories/log.md": "one\ntwo\n"}
    restarted = make_bot()
    await restarted.start()
    thread_ts = str(envelope["event"]["ts"])
    await wait_until(lambda: replies(slack, thread_ts) == ["Logged."], timeout=15)
    assert (await store.snapshot(scope)).files == {"/memories/log.md": "one\ntwo\n"}
    assert len(claude.requests) == 2
    assert "Inserted text after line 1" in tool_results(claude.last_request)


async def test_agent_memory_shows_it_a_thread_reset_keeps_it_and_an_admin_clears_it(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: RedisClient
) -> None:
    """`/agent memory` lists what the channel's agents stored; resetting the thread that stored it leaves it; an
    admin's `/agent memory clear` empties it, and the next thread finds nothing."""
    bot = make_bot(ADMIN_USER_IDS="U0ALICE")
    await bot.start()
    claude.reply_tool_use("memory", {"command": "create", "path": "/memories/team.md", "file_text": FACT})
    claude.reply_text("Noted.")
    thread_ts = await ask(bot, slack, "remember who leads the team", "Noted.")
    listing = await command(bot, slack, "memory")
    assert "has 1 file(s)" in listing["text"] and FACT in json.dumps(listing["blocks"])

    link = f"<https://fake-team.slack.com/archives/{CHANNEL}/p{thread_ts.replace('.', '')}>"
    assert "Reset the agent" in (await command(bot, slack, f"reset {link}"))["text"]
    await wait_until(lambda: any("reset this thread" in text for text in replies(slack, thread_ts)), timeout=15)
    assert "has 1 file(s)" in (await command(bot, slack, "memory"))["text"]

    cleared = await command(bot, slack, "memory clear")
    assert "Cleared the memory" in cleared["text"] and "is empty" in cleared["text"]
    claude.reply_tool_use("memory", {"command": "view", "path": "/memories"})
    claude.reply_text("Nothing yet.")
    await ask(bot, slack, "what do you remember?", "Nothing yet.")
    assert "team.md" not in tool_results(claude.last_request)
