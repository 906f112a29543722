"""`/agent config` through the running bot: the modal, who may save it, conflicts, the note in the channel, and what
a channel's configuration does to its agents' requests (and to no other channel's), from the next task on."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from redis.asyncio import Redis

from store import keys
from store.channel_config import ChannelConfigStore
from tests.fakes import FakeAnthropic, FakeSlack, Reply, block_actions_form, wait_until
from tests.integration.conftest import BotFactory
from tests.integration.harness import BotProcess

pytestmark = pytest.mark.integration
CHANNEL, OTHER_CHANNEL = "C0GENERAL", "C0RANDOM"
INSTRUCTIONS, MODEL, TOOLS = "config_instructions", "config_model", "config_tools"
CHANNEL_MODEL = "claude-opus-4-5"
SETTINGS = {"CHANNEL_MODELS": CHANNEL_MODEL, "ANTHROPIC_SERVER_TOOLS": "web_search,web_fetch"}
PIRATE, HAIKU = "Talk like a pirate.", "Answer in haiku."


@pytest.fixture
async def configurable(make_bot: BotFactory, slack: FakeSlack) -> BotProcess:
    """A bot that offers channels one more model and the server tools; Alice and Carol are workspace admins."""
    slack.add_user("U0ALICE", "alice", is_admin=True)
    slack.add_user("U0CAROL", "carol", is_admin=True)
    slack.add_user("U0BOB", "bob")
    bot = make_bot(**SETTINGS)
    await bot.start()
    return bot


async def run_config(bot: BotProcess, slack: FakeSlack, user: str, channel: str = CHANNEL) -> tuple[str, str | None]:
    """`/agent config` as `user`: the acknowledgement's text ("" when it says nothing) and the modal it opened."""
    before = set(slack.views)
    status, body = await bot.post_command(
        urlencode(slack.slash_command("/agent", "config", channel=channel, user=user))
    )
    assert status == 200
    opened = [view_id for view_id in slack.views if view_id not in before]
    text = str(json.loads(body).get("text", "")) if body.strip() else ""
    return text, opened[0] if opened else None


async def submit(bot: BotProcess, slack: FakeSlack, view_id: str, values: dict[str, Any], user: str) -> str:
    """The person submits the open modal; what Slack then does with it ("closed", "errors", "updated"...)."""
    payload = slack.submit_view(view_id, values, user=user)
    status, body = await bot.post_command(block_actions_form(payload))
    return slack.view_response(view_id, status, body)


def notes(slack: FakeSlack, channel: str = CHANNEL) -> list[str]:
    """The bot's top-level messages in the channel: its notes of configuration changes."""
    return [
        str(m["text"]) for m in slack.messages(channel) if m.get("bot_id") == slack.bot_id and not m.get("thread_ts")
    ]


def mention(slack: FakeSlack, text: str, channel: str = CHANNEL, thread_ts: str | None = None) -> dict[str, Any]:
    return slack.post_user_message(
        channel, f"<@{slack.bot_user_id}> {text}", user="U0BOB", thread_ts=thread_ts, mention=True
    )


def system_text(request: dict[str, Any]) -> str:
    system = request["system"]
    return system if isinstance(system, str) else "".join(block["text"] for block in system)


async def answered(bot: BotProcess, slack: FakeSlack, claude: FakeAnthropic, channel: str = CHANNEL) -> dict[str, Any]:
    """Mention the bot in a new thread of `channel`; the model request that answered it."""
    claude.reply_text("answer")
    envelope = mention(slack, "hello", channel)
    count = len(claude.requests)
    await bot.post_event(envelope)
    await wait_until(lambda: len(claude.requests) > count, timeout=10)
    ts = str(envelope["event"]["ts"])
    await wait_until(lambda: any(m.get("text") == "answer" for m in slack.bot_replies(channel, ts)), timeout=10)
    return claude.requests[-1]


@pytest.mark.both_redis
async def test_an_admin_saves_the_modal_the_channel_is_told_once_and_its_agents_follow_it(
    configurable: BotProcess, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """The modal opens on the defaults; a save stores the choices, posts one note, shows in `/agent status`, and the
    channel's next tasks send its instructions, model and tools, while another channel's do not."""
    text, view_id = await run_config(configurable, slack, "U0ALICE")
    assert text == "" and view_id is not None
    shown = {block.get("block_id"): block for block in slack.views[view_id].view["blocks"]}
    assert [option["value"] for option in shown[TOOLS]["element"]["initial_options"]] == [
        "memory",
        "schedule",
        "web_search",
        "web_fetch",
    ]
    assert await submit(
        configurable, slack, view_id, {INSTRUCTIONS: PIRATE, MODEL: CHANNEL_MODEL, TOOLS: ["web_fetch"]}, "U0ALICE"
    ) == ("closed")
    await wait_until(lambda: notes(slack), timeout=10)
    [note] = notes(slack)
    assert note.startswith("<@U0ALICE> changed the instructions, set the model to claude-opus-4-5 and set the tools")
    assert PIRATE not in note
    stored = json.loads(str(await redis.get(keys.channel_config(slack.team_id, CHANNEL))))
    assert (stored["instructions"], stored["model"], stored["tools"]) == (PIRATE, CHANNEL_MODEL, ["web_fetch"])

    # Saved again unchanged: no new version, no second note.
    _, again = await run_config(configurable, slack, "U0ALICE")
    assert again is not None and await submit(configurable, slack, again, {}, "U0ALICE") == "closed"
    _, body = await configurable.post_command(
        urlencode(slack.slash_command("/agent", "status", channel=CHANNEL, user="U0BOB"))
    )
    status_text = json.dumps(json.loads(body)["blocks"])
    assert "version 1" in status_text and PIRATE in status_text and CHANNEL_MODEL in status_text
    assert len(notes(slack)) == 1

    here = await answered(configurable, slack, claude)
    assert PIRATE in system_text(here) and here["model"] == CHANNEL_MODEL
    assert [tool["name"] for tool in here["tools"]] == ["read_thread", "web_fetch"]
    there = await answered(configurable, slack, claude, OTHER_CHANNEL)
    assert PIRATE not in system_text(there) and there["model"] != CHANNEL_MODEL
    assert [tool["name"] for tool in there["tools"]] == ["read_thread", "memory", "schedule", "web_search", "web_fetch"]


async def test_only_admins_open_or_save_it_and_not_in_a_dm(
    configurable: BotProcess, slack: FakeSlack, redis: Redis
) -> None:
    """A non-admin gets who may instead of a modal; an admin demoted while the modal is open cannot save it; a DM
    has no settings."""
    text, view_id = await run_config(configurable, slack, "U0BOB")
    assert view_id is None and text.startswith("Only the workspace's admins and owners may change")
    text, view_id = await run_config(configurable, slack, "U0ALICE", channel="D0BOB")
    assert view_id is None and "direct message" in text

    _, view_id = await run_config(configurable, slack, "U0CAROL")
    assert view_id is not None
    slack.add_user("U0CAROL", "carol", is_admin=False)
    await redis.delete(keys.admin_role(slack.team_id, "U0CAROL"))  # the cached role, as if 10 minutes had passed
    assert await submit(configurable, slack, view_id, {INSTRUCTIONS: PIRATE}, "U0CAROL") == "errors"
    assert "Only the workspace's admins" in slack.views[view_id].errors[INSTRUCTIONS]
    assert not await redis.exists(keys.channel_config(slack.team_id, CHANNEL))
    assert notes(slack) == []


async def test_a_conflicting_save_keeps_the_entries_and_saves_only_when_repeated(
    configurable: BotProcess, slack: FakeSlack, redis: Redis
) -> None:
    """Two admins edit at once: the later save is shown the modal again on the newer version, with its own entries
    and a warning naming the other; saving again replaces the other's. One note per save."""
    _, alices = await run_config(configurable, slack, "U0ALICE")
    _, carols = await run_config(configurable, slack, "U0CAROL")
    assert alices and carols
    assert await submit(configurable, slack, carols, {INSTRUCTIONS: HAIKU}, "U0CAROL") == "closed"
    assert await submit(configurable, slack, alices, {INSTRUCTIONS: PIRATE}, "U0ALICE") == "updated"
    store = ChannelConfigStore(redis)
    assert (await store.get(slack.team_id, CHANNEL)).instructions == HAIKU
    view = slack.views[alices].view
    assert json.loads(view["private_metadata"])["version"] == 1
    assert "<@U0CAROL> changed these settings" in json.dumps(view["blocks"])
    kept = {block.get("block_id"): block for block in view["blocks"]}[INSTRUCTIONS]["element"]["initial_value"]
    assert kept == PIRATE

    assert await submit(configurable, slack, alices, {}, "U0ALICE") == "closed"
    saved = await store.get(slack.team_id, CHANNEL)
    assert (saved.instructions, saved.version, saved.updated_by) == (PIRATE, 2, "U0ALICE")
    await wait_until(lambda: len(notes(slack)) == 2, timeout=10)
    await asyncio.sleep(0.5)
    assert [note.split()[0] for note in notes(slack)] == ["<@U0CAROL>", "<@U0ALICE>"]


async def test_the_prompt_is_byte_stable_and_a_change_applies_from_the_next_task_even_across_a_crash(
    make_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis: Redis
) -> None:
    """Two tasks of an unchanged channel send the same system prompt and tools, byte for byte; a change made while a
    task runs does not reach it, not even after the process is killed and the task resumed; the next task has it."""
    slack.add_user("U0ALICE", "alice", is_admin=True)
    store = ChannelConfigStore(redis)
    await store.save(slack.team_id, CHANNEL, instructions=PIRATE, model="", tools=None, by="U0ALICE", from_version=0)
    bot = make_bot(BOT_CRASH_AT="tool.done", **SETTINGS)
    await bot.start()
    first, second = [await answered(bot, slack, claude) for _ in range(2)]
    assert json.dumps(first["system"]) == json.dumps(second["system"]) and PIRATE in system_text(first)
    assert json.dumps(first["tools"]) == json.dumps(second["tools"])

    gate = asyncio.Event()
    claude.enqueue(
        Reply([{"type": "tool_use", "id": "toolu_1", "name": "read_thread", "input": {}}], "tool_use", gate=gate)
    )
    claude.reply_text("resumed answer")
    envelope = mention(slack, "read the thread")
    count = len(claude.requests)
    await bot.post_event(envelope)
    await wait_until(lambda: len(claude.requests) == count + 1, timeout=10)
    _, view_id = await run_config(bot, slack, "U0ALICE")  # changed while the task waits for the model
    assert view_id and await submit(bot, slack, view_id, {INSTRUCTIONS: HAIKU}, "U0ALICE") == "closed"
    gate.set()
    assert await asyncio.wait_for(bot.process.wait(), 15) == -9  # type: ignore[union-attr]  # killed at tool.done

    restarted = make_bot(**SETTINGS)
    await restarted.start()
    ts = str(envelope["event"]["ts"])
    await wait_until(lambda: any(m.get("text") == "resumed answer" for m in slack.bot_replies(CHANNEL, ts)), timeout=15)
    resumed = claude.requests[count + 1]
    assert resumed["messages"][-1]["content"][0]["type"] == "tool_result", "the resumed call, after the tool"
    assert json.dumps(resumed["system"]) == json.dumps(first["system"]), "the task kept its journaled setup"
    after = await answered(restarted, slack, claude)
    assert HAIKU in system_text(after) and PIRATE not in system_text(after)


async def test_with_no_admins_configured_anyone_may_change_it(make_bot: BotFactory, slack: FakeSlack) -> None:
    """No ADMIN_USER_IDS and workspace admins not counted: nobody is an admin, so anyone may change the settings."""
    slack.add_user("U0BOB", "bob")
    bot = make_bot(WORKSPACE_ADMINS_ARE_ADMINS="false")
    await bot.start()
    _, view_id = await run_config(bot, slack, "U0BOB")
    assert view_id is not None and await submit(bot, slack, view_id, {INSTRUCTIONS: PIRATE}, "U0BOB") == "closed"
    await wait_until(lambda: notes(slack), timeout=10)
    assert notes(slack)[0].startswith("<@U0BOB> changed the instructions")


async def test_a_modal_slack_will_not_open_is_explained(configurable: BotProcess, slack: FakeSlack) -> None:
    """views.open past the trigger's 3 s (a slow Slack) opens nothing: the person is told, and may run it again."""
    slack.delay("views.open", 3.2)
    text, view_id = await run_config(configurable, slack, "U0ALICE")
    assert (
        view_id is None and text == "Slack would not open the settings (expired_trigger_id). Run `/agent config` again."
    )
    slack.delay("views.open", 0)
    assert (await run_config(configurable, slack, "U0ALICE"))[1] is not None
